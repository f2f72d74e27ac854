// Package sbom recognises an SBOM document and summarises it.
//
// It has one job: given the bytes of a file that a release engineer listed as
// an SBOM, tell whether it is SPDX JSON (2.x) or CycloneDX JSON and record
// the few facts airlock shows to reviewers: the format, its spec version, the
// document or subject name and how many packages or components it lists.
//
// The input is untrusted. Summarize reads at most MaxSize bytes, decodes only
// the fields it needs, and parses them strictly: duplicate keys and keys that
// differ from a field it reads only by letter case are rejected, as is
// anything after the JSON value. Tag-value SPDX, XML CycloneDX and other
// encodings are not recognised; convert them to JSON first.
//
// List, for the reviewer's report, lists every component with its version,
// package URL and license, using github.com/CycloneDX/cyclonedx-go (JSON and
// XML) and github.com/spdx/tools-golang (SPDX JSON, tag-value, YAML and
// RDF/XML). It takes the same MaxSize bound, applies Summarize's strict
// checks to JSON documents first, and bounds the component count and every
// string it copies.
package sbom
