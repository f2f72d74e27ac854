package keyless

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Annotations cosign writes on a keyless signature layer.
const (
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	AnnotationChain       = "dev.sigstore.cosign/chain"
	AnnotationBundle      = "dev.sigstore.cosign/bundle"
)

// sigManifest is the part of a cosign signature manifest read here: the
// layers' annotations (cosign.Parse reads the rest).
type sigManifest struct {
	Layers []struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"layers"`
}

// rekorBundle is cosign's dev.sigstore.cosign/bundle annotation: the
// signed entry timestamp and the entry it covers.
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	} `json:"Payload"`
}

// cosignTagCandidates turns each layer of a cosign signature manifest that
// carries a certificate into a signed entity sigstore-go verifies: the
// certificate, a message signature over the simple signing payload, and a
// Rekor entry with its signed entry timestamp. After sigstore-go, the
// payload must name the image digest (cosign.Verify).
func cosignTagCandidates(ctx context.Context, at Attachment, blob BlobFunc, digest string) ([]candidate, error) {
	sigs, err := cosign.Parse(at.Raw)
	if err != nil {
		return nil, err
	}
	var m sigManifest
	if err := json.Unmarshal(at.Raw, &m); err != nil || len(m.Layers) != len(sigs) {
		return nil, fmt.Errorf("signature manifest layers do not parse")
	}
	var out []candidate
	var reasons []string
	for i, s := range sigs {
		ann := m.Layers[i].Annotations
		if ann[AnnotationCertificate] == "" {
			continue // a key-based signature: not for this verifier
		}
		where := fmt.Sprintf("%s layer %d", at.Root.Digest, i)
		c, err := cosignLayer(ctx, s, ann, blob, digest)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("layer %d: %v", i, err))
			continue
		}
		c.where = where
		out = append(out, c)
	}
	if len(out) == 0 {
		if len(reasons) > 0 {
			return nil, fmt.Errorf("%s", joinReasons(reasons))
		}
		return nil, fmt.Errorf("no layer carries a certificate (%s): a key-based signature", AnnotationCertificate)
	}
	return out, nil
}

func cosignLayer(ctx context.Context, s cosign.Signature, ann map[string]string, blob BlobFunc, digest string) (candidate, error) {
	block, rest := pem.Decode([]byte(ann[AnnotationCertificate]))
	if block == nil || block.Type != "CERTIFICATE" || len(rest) > 0 && len(trimSpace(rest)) > 0 {
		return candidate{}, fmt.Errorf("%s is not one PEM certificate", AnnotationCertificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return candidate{}, fmt.Errorf("%s: %v", AnnotationCertificate, err)
	}
	raw := ann[AnnotationBundle]
	if raw == "" {
		return candidate{}, fmt.Errorf("no Rekor bundle (%s): the signature was not logged, or the log entry was dropped", AnnotationBundle)
	}
	if err := strictjson.Check([]byte(raw)); err != nil {
		return candidate{}, fmt.Errorf("%s: %v", AnnotationBundle, err)
	}
	var rb rekorBundle
	if err := json.Unmarshal([]byte(raw), &rb); err != nil {
		return candidate{}, fmt.Errorf("%s: %v", AnnotationBundle, err)
	}
	body, err := base64.StdEncoding.DecodeString(rb.Payload.Body)
	if err != nil {
		return candidate{}, fmt.Errorf("%s: body: %v", AnnotationBundle, err)
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil || len(rb.SignedEntryTimestamp) == 0 {
		return candidate{}, fmt.Errorf("%s: no log id or no signed entry timestamp", AnnotationBundle)
	}
	entry, err := tlog.NewEntry(body, rb.Payload.IntegratedTime, rb.Payload.LogIndex, logID, rb.SignedEntryTimestamp, nil) //nolint:staticcheck // the Rekor v1 form cosign's annotation carries
	if err != nil {
		return candidate{}, fmt.Errorf("%s: %v", AnnotationBundle, err)
	}
	payload, err := blob(ctx, bundle.Descriptor(s.Payload))
	if err != nil {
		return candidate{}, fmt.Errorf("payload %s: %w", s.Payload.Digest, err)
	}
	ent := &cosignEntity{cert: cert, sig: sgbundle.NewMessageSignature(digestOf(payload), "SHA2_256", s.Signature), entry: entry}
	check := func() error {
		v, err := signature.LoadVerifier(cert.PublicKey, crypto.SHA256)
		if err != nil {
			return err
		}
		return cosign.Verify(payload, s.Signature, digest, v)
	}
	return candidate{form: FormCosignTag, entity: ent, payload: payload, check: check}, nil
}

func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == '\n' || b[j-1] == '\r' || b[j-1] == '\t') {
		j--
	}
	return b[i:j]
}

// cosignEntity is a cosign tag signature as sigstore-go's SignedEntity.
type cosignEntity struct {
	cert  *x509.Certificate
	sig   *sgbundle.MessageSignature
	entry *tlog.Entry
}

func (e *cosignEntity) HasInclusionPromise() bool { return true }
func (e *cosignEntity) HasInclusionProof() bool   { return false }
func (e *cosignEntity) Version() (string, error)  { return "v0.1", nil }
func (e *cosignEntity) Timestamps() ([][]byte, error) {
	return nil, nil
}
func (e *cosignEntity) TlogEntries() ([]*tlog.Entry, error) { return []*tlog.Entry{e.entry}, nil }
func (e *cosignEntity) SignatureContent() (sgverify.SignatureContent, error) {
	return e.sig, nil
}
func (e *cosignEntity) VerificationContent() (sgverify.VerificationContent, error) {
	return sgbundle.NewCertificate(e.cert), nil
}
