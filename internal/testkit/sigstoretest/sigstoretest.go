// Package sigstoretest signs test images keylessly with an in-process
// Sigstore (sigstore-go's VirtualSigstore: a Fulcio CA, a Rekor log and a
// timestamp authority in memory) and writes the matching trusted root. It
// produces the two forms upstream images carry: a Sigstore bundle (for an
// OCI referrer) and a cosign ".sig" layer with certificate and Rekor bundle
// annotations.
package sigstoretest

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
)

// MediaTypeBundle is the Sigstore bundle media type the referrers carry.
const MediaTypeBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Sigstore is one in-process Sigstore instance.
type Sigstore struct {
	vs *ca.VirtualSigstore
	// Root is its trusted_root.json (Fulcio CA, Rekor log, TSA; no CT log,
	// since the virtual Fulcio embeds no SCTs).
	Root []byte
}

// New starts an in-process Sigstore.
func New(t testing.TB) *Sigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	// VirtualSigstore keeps each log's id as hex text; a trusted root
	// file holds the raw key id, which verifiers hex-encode again.
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		raw, err := hex.DecodeString(id)
		if err != nil {
			t.Fatal(err)
		}
		c := *l
		c.ID = raw
		logs[id] = &c
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil, vs.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &Sigstore{vs: vs, Root: raw}
}

// Options changes how a signature is made. The zero value makes a valid
// one logged a few minutes after the certificate was issued.
type Options struct {
	// LogTime is the Rekor entry's integrated time; zero means 5 minutes
	// from now (inside the 10-minute certificate).
	LogTime time.Time
	// NoInclusionProof leaves the Rekor entry's inclusion proof out.
	NoInclusionProof bool
}

func (o Options) logTime() time.Time {
	if o.LogTime.IsZero() {
		return time.Now().Add(5 * time.Minute)
	}
	return o.LogTime
}

// Bundle signs, as cosign v3 does, an in-toto statement whose subject is
// the image digest ("sha256:<hex>") and returns the Sigstore bundle JSON
// (v0.3: certificate, DSSE envelope, Rekor entry with inclusion proof and
// signed entry timestamp).
func (s *Sigstore) Bundle(t testing.TB, identity, issuer, ref, digest string, o Options) []byte {
	t.Helper()
	stmt, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": ref, "digest": map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}},
		"predicateType": "https://sigstore.dev/cosign/sign/v1",
		"predicate":     map[string]any{},
	})
	ent, err := s.vs.AttestAtTime(identity, issuer, stmt, o.logTime(), !o.NoInclusionProof)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	leaf := vc.(*sgbundle.Certificate).Certificate()
	sc, _ := ent.SignatureContent()
	env := sc.(*sgbundle.Envelope).Envelope
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := ent.TlogEntries()
	tle := s.protoEntry(t, entries[0])
	pb := &protobundle.Bundle{
		MediaType: MediaTypeBundle,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: leaf.Raw}},
			TlogEntries: []*protorekor.TransparencyLogEntry{tle},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: env.PayloadType,
			Signatures: []*protodsse.Signature{{Sig: sig, Keyid: env.Signatures[0].KeyID}},
		}},
	}
	out, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// protoEntry is the protobuf form of a Rekor v1 entry, with its kind and
// version and a signed entry timestamp made by the virtual log.
func (s *Sigstore) protoEntry(t testing.TB, e *tlog.Entry) *protorekor.TransparencyLogEntry {
	t.Helper()
	tle := e.TransparencyLogEntry()
	var kv struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(tle.CanonicalizedBody, &kv); err != nil {
		t.Fatal(err)
	}
	tle.KindVersion = &protorekor.KindVersion{Kind: kv.Kind, Version: kv.APIVersion}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: s.set(t, tle)}
	return tle
}

// set makes the Rekor signed entry timestamp of an entry.
func (s *Sigstore) set(t testing.TB, tle *protorekor.TransparencyLogEntry) []byte {
	t.Helper()
	set, err := s.vs.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime,
		LogIndex:       tle.LogIndex,
		LogID:          hex.EncodeToString(tle.LogId.KeyId),
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// CosignLayer signs payload (a cosign simple signing payload) as `cosign
// sign` did before bundles, keylessly, and returns the layer annotations:
// the base64 signature, the PEM certificate and chain, and the Rekor bundle
// (signed entry timestamp over a hashedrekord entry).
func (s *Sigstore) CosignLayer(t testing.TB, identity, issuer string, payload []byte, o Options) map[string]string {
	t.Helper()
	ent, err := s.vs.SignAtTime(identity, issuer, payload, o.logTime())
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	leaf := vc.(*sgbundle.Certificate).Certificate()
	sc, _ := ent.SignatureContent()
	sig := sc.(*sgbundle.MessageSignature).Signature()
	entries, _ := ent.TlogEntries()
	tle := entries[0].TransparencyLogEntry()
	rb, _ := json.Marshal(map[string]any{
		"SignedEntryTimestamp": s.set(t, tle),
		"Payload": map[string]any{
			"body":           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
			"integratedTime": tle.IntegratedTime,
			"logIndex":       tle.LogIndex,
			"logID":          hex.EncodeToString(tle.LogId.KeyId),
		},
	})
	return map[string]string{
		"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig),
		"dev.sigstore.cosign/certificate":    string(pemCert(leaf)),
		"dev.sigstore.cosign/bundle":         string(rb),
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
