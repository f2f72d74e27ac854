package verify_test

// Issue 10: what the policy evaluates comes from verified content, and the
// signature and time encodings are strict. Each test crafts the hostile
// input and re-signs it with the policy's keys, so only the check under
// test can refuse it.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/verify"
)

// memImages is an in-memory ImageResolver: one two-platform OCI index
// (linux/amd64, linux/arm64), each manifest with its config and one layer.
type memImages struct {
	root  bundle.Descriptor
	blobs map[string][]byte
}

func newMemImages(t *testing.T) *memImages {
	t.Helper()
	m := &memImages{blobs: map[string][]byte{}}
	put := func(b []byte) bundle.Descriptor {
		d := bundle.Descriptor{Digest: checked.Digest(b), Size: int64(len(b))}
		m.blobs[d.Digest] = b
		return d
	}
	var entries []string
	for _, arch := range []string{"amd64", "arm64"} {
		cfg := put([]byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, arch)))
		layer := put([]byte("layer for " + arch))
		man := put([]byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
			bundle.MediaTypeOCIManifest, cfg.Digest, cfg.Size, layer.Digest, layer.Size)))
		entries = append(entries, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":%q,"os":"linux"}}`, bundle.MediaTypeOCIManifest, man.Digest, man.Size, arch))
	}
	m.root = put([]byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, bundle.MediaTypeOCIIndex, strings.Join(entries, ","))))
	m.root.MediaType = bundle.MediaTypeOCIIndex
	return m
}

func (m *memImages) Resolve(context.Context, string) (pack.ImageSource, error) { return m, nil }
func (m *memImages) Root() (bundle.Descriptor, []byte)                         { return m.root, m.blobs[m.root.Digest] }
func (m *memImages) Repository() string                                        { return "registry.example/demo/api" }
func (m *memImages) Staged() bool                                              { return false }
func (m *memImages) Manifest(_ context.Context, d bundle.Descriptor) ([]byte, error) {
	return m.blobs[d.Digest], nil
}
func (m *memImages) Blob(_ context.Context, d bundle.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m.blobs[d.Digest])), nil
}

// packImage packs an unsigned bundle "demo" holding the two-platform image.
func packImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	spec, err := pack.ParseSpec(filepath.Join(dir, "airlock.yaml"), []byte("name: demo\nversion: 1.0.0\nimages:\n  - ref: registry.example/demo/api:1.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "demo.airlock")
	if _, err := pack.Pack(context.Background(), spec, pack.Options{Output: out, Created: created, Images: newMemImages(t)}); err != nil {
		t.Fatal(err)
	}
	return out
}

// resign rewrites bundle.json of an unsigned bundle with edit, updates the
// statement to cover it (and applies editPayload to the statement's JSON),
// and signs the result with release and security (2 of 3).
func resign(t *testing.T, b []byte, edit func(m map[string]any), editPayload func(p []byte) []byte) []byte {
	t.Helper()
	h, err := bundle.ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	manRaw := h.ManifestBytes
	if edit != nil {
		dec := json.NewDecoder(bytes.NewReader(manRaw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		manRaw, _ = json.Marshal(m)
	}
	sum := sha256.Sum256(manRaw)
	mdesc := fmt.Sprintf(`"manifest":{"mediaType":%q,"digest":"sha256:%x","size":%d}`, bundle.MediaTypeBundleManifest, sum, len(manRaw))
	f := getFixture(t)
	return rewriteHead(t, b, func(name string, data []byte) []byte {
		switch name {
		case bundle.EntryManifest:
			return manRaw
		case bundle.EntrySignatures:
		default:
			return data
		}
		var e bundle.Envelope
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatal(err)
		}
		p, _ := base64.StdEncoding.DecodeString(e.Payload)
		i := bytes.Index(p, []byte(`"manifest":{`))
		j := bytes.Index(p[i:], []byte("}")) + i + 1
		p = append(append(append([]byte(nil), p[:i]...), mdesc...), p[j:]...)
		if editPayload != nil {
			p = editPayload(p)
		}
		e.Payload = base64.StdEncoding.EncodeToString(p)
		pae, err := e.PAE()
		if err != nil {
			t.Fatal(err)
		}
		e.Signatures = nil
		for _, n := range []string{"release", "security"} {
			sig, err := f.signers[n].Sign(context.Background(), pae)
			if err != nil {
				t.Fatal(err)
			}
			e.Signatures = append(e.Signatures, bundle.EnvelopeSignature{KeyID: f.signers[n].KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)})
		}
		out, _ := json.Marshal(e)
		return out
	})
}

func platformPolicy(t *testing.T, platform string) string {
	return fmt.Sprintf("keys:\n  release: { publicKey: release.pub }\n  security: { publicKey: security.pub }\nbundles:\n  - match: demo\n    signers: [release, security]\n    threshold: 2\n    require:\n      platforms: [%s]\n", platform)
}

// TestPlatformsComeFromContent: a signed bundle.json that claims a platform
// the image's index and configs do not offer cannot meet require.platforms.
func TestPlatformsComeFromContent(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(packImage(t))
	if err != nil {
		t.Fatal(err)
	}
	honest := resign(t, raw, nil, nil)
	if _, err := run(t, honest, writePolicy(t, platformPolicy(t, "linux/arm64")), soon); err != nil {
		t.Fatalf("the honest bundle: %v", err)
	}
	if _, err := run(t, honest, writePolicy(t, platformPolicy(t, "linux/s390x")), soon); err == nil {
		t.Fatal("linux/s390x required and not offered, but accepted")
	}
	lying := resign(t, raw, func(m map[string]any) {
		a := m["artifacts"].([]any)[0].(map[string]any)
		a["platforms"] = []any{"linux/amd64", "linux/arm64", "linux/s390x"}
	}, nil)
	_, err = run(t, lying, writePolicy(t, platformPolicy(t, "linux/s390x")), soon)
	if !errors.Is(err, bundle.ErrMalformed) || !verify.IsFailure(err) {
		t.Fatalf("a signed platforms claim the content does not back: err = %v, want malformed", err)
	}
	if !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "artifact 0 (image registry.example/demo/api:1.0)") {
		t.Fatalf("the message does not name the claim and the artifact: %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestSignatureEncodingIsDER: the release key's valid signature re-encoded
// as raw r||s (IEEE P1363), which sigstore's verifier also accepts, is refused.
func TestSignatureEncodingIsDER(t *testing.T) {
	t.Parallel()
	good := packDemo(t, bundle.StatementOptions{}, "release", "security")
	relID := getFixture(t).signers["release"].KeyID()
	p1363 := editEnvelope(t, good, func(e *bundle.Envelope) {
		for i, s := range e.Signatures {
			if s.KeyID != relID {
				continue
			}
			der, _ := base64.StdEncoding.DecodeString(s.Sig)
			in := cryptobyte.String(der)
			var seq cryptobyte.String
			r, ss := new(big.Int), new(big.Int)
			if !in.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1Integer(r) || !seq.ReadASN1Integer(ss) {
				t.Fatal("the release signature is not DER")
			}
			raw := append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
			e.Signatures[i].Sig = base64.StdEncoding.EncodeToString(raw)
		}
	})
	// The raw form is a valid signature for the key: prove it, so the
	// refusal below is about the encoding alone.
	h, _ := bundle.ReadHead(bytes.NewReader(p1363))
	pae, _ := h.Envelope.PAE()
	pub, _ := keys.LoadPublic(filepath.Join(getFixture(t).dir, "release.pub"))
	digest := sha256.Sum256(pae)
	for _, s := range h.Envelope.Signatures {
		if s.KeyID == relID {
			raw, _ := base64.StdEncoding.DecodeString(s.Sig)
			if !ecdsa.Verify(pub.Key.(*ecdsa.PublicKey), digest[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
				t.Fatal("the r||s signature does not verify at all; the test proves nothing")
			}
		}
	}
	_, err := run(t, p1363, defaultPolicy(t), soon)
	if !errors.Is(err, verify.ErrUntrusted) || !errors.Is(err, keys.ErrSignatureEncoding) {
		t.Fatalf("err = %v, want untrusted: signature encoding", err)
	}
	if !strings.Contains(err.Error(), "ASN.1 DER") {
		t.Fatalf("the message does not say which form is expected: %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestTimesAreStrict: created and expires are RFC 3339 UTC with whole
// seconds and a Z, in the statement and in bundle.json; the same instant
// or a valid later one in another spelling is refused, even when signed.
func TestTimesAreStrict(t *testing.T) {
	t.Parallel()
	unsigned := packDemo(t, bundle.StatementOptions{})
	if _, err := run(t, resign(t, unsigned, nil, nil), defaultPolicy(t), soon); err != nil {
		t.Fatalf("the honest re-signed bundle: %v", err)
	}
	h, _ := bundle.ReadHead(bytes.NewReader(unsigned))
	exp := h.Statement.Predicate.Expires.Format("2006-01-02T15:04:05Z")
	swap := func(from, to string) func([]byte) []byte {
		return func(p []byte) []byte { return bytes.Replace(p, []byte(from), []byte(to), 1) }
	}
	cases := map[string]func([]byte) []byte{
		"expires with a +14:00 offset":   swap(`"expires":"`+exp+`"`, `"expires":"`+strings.TrimSuffix(exp, "Z")+`+14:00"`),
		"expires with fractional secs":   swap(`"expires":"`+exp+`"`, `"expires":"`+strings.TrimSuffix(exp, "Z")+`.5Z"`),
		"expires with a lowercase z":     swap(`"expires":"`+exp+`"`, `"expires":"`+strings.TrimSuffix(exp, "Z")+`z"`),
		"created as +00:00 in statement": swap(`"created":"2026-01-01T00:00:00Z"`, `"created":"2026-01-01T00:00:00+00:00"`),
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := resign(t, unsigned, nil, edit)
			_, err := run(t, b, defaultPolicy(t), soon)
			if !errors.Is(err, bundle.ErrStatement) || !verify.IsFailure(err) {
				t.Fatalf("err = %v, want invalid statement", err)
			}
			if !strings.Contains(err.Error(), "2026-01-01T00:00:00Z") {
				t.Fatalf("the message does not show the expected form: %v", err)
			}
		})
	}
	t.Run("bundle.json created with fractional seconds", func(t *testing.T) {
		t.Parallel()
		b := resign(t, unsigned, func(m map[string]any) { m["created"] = "2026-01-01T00:00:00.000Z" }, nil)
		_, err := run(t, b, defaultPolicy(t), soon)
		if !errors.Is(err, bundle.ErrMalformed) {
			t.Fatalf("err = %v, want malformed", err)
		}
	})
}
