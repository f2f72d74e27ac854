// Package report renders one verification of a bundle for a compliance
// reviewer: the verdict, the policy and every check, the signed statement,
// every signature, every artifact with its manifest and content digests,
// the upstream attachments carried, the SBOMs with their full component and
// license lists, and size charts. It writes a single self-contained HTML
// file (inline CSS and SVG, no external assets), Markdown or JSON.
//
// The report is built from the same single verification pass as `airlock
// verify`: a Collector rides on verify.Options (Trusted and Blob) to keep the
// SBOM documents as their bytes are checked. The package never touches the
// network (deps_test.go keeps it so).
package report
