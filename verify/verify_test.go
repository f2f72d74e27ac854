package verify_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

var created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture holds three signing keys and a 2-of-3 policy, made once per process.
type fixture struct {
	dir     string
	signers map[string]bundle.Signer
	policy  string // path of the 2-of-3 policy for bundle "demo"
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "airlock-verify-test-")
		if err != nil {
			fixErr = err
			return
		}
		f := &fixture{dir: dir, signers: map[string]bundle.Signer{}}
		pw := []byte("test-password")
		for _, n := range []string{"release", "security", "ops", "outsider"} {
			alg := map[string]string{"release": "ecdsa-p256", "security": "ed25519", "ops": "rsa-3072", "outsider": "ecdsa-p256"}[n]
			if _, err := keys.Generate(filepath.Join(dir, n), alg, pw); err != nil {
				fixErr = err
				return
			}
			s, err := keys.LoadSigner(filepath.Join(dir, n+".key"), func(bool) ([]byte, error) { return pw, nil })
			if err != nil {
				fixErr = err
				return
			}
			f.signers[n] = s
		}
		f.policy = filepath.Join(dir, "policy.yaml")
		fixErr = os.WriteFile(f.policy, []byte(`keys:
  release:  { publicKey: release.pub }
  security: { publicKey: security.pub }
  ops:      { publicKey: ops.pub }
bundles:
  - match: "demo"
    signers: [release, security, ops]
    threshold: 2
`), 0o644)
		fix = f
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func writePolicy(t *testing.T, body string) *policy.Policy {
	t.Helper()
	f := getFixture(t)
	p := filepath.Join(t.TempDir(), "policy.yaml")
	for _, k := range []string{"release", "security", "ops"} {
		b, err := os.ReadFile(filepath.Join(f.dir, k+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(filepath.Dir(p), k+".pub"), b, 0o644)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

func defaultPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	pol, err := policy.Load(getFixture(t).policy)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// packDemo packs a small release of local files, signed by the named keys.
func packDemo(t *testing.T, st bundle.StatementOptions, signerNames ...string) []byte {
	t.Helper()
	return packDemoAt(t, created, st, signerNames...)
}

func packDemoAt(t *testing.T, created time.Time, st bundle.StatementOptions, signerNames ...string) []byte {
	t.Helper()
	f := getFixture(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.yaml"), []byte("port: 8080\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "model.bin"), bytes.Repeat([]byte("weights"), 50000), 0o644)
	spec, err := pack.ParseSpec(filepath.Join(dir, "airlock.yaml"), []byte("name: demo\nversion: 1.0.0\nfiles:\n  - {source: app.yaml, target: etc/app.yaml}\nmodels:\n  - {source: model.bin, name: m, target: models/m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var signers []bundle.Signer
	for _, n := range signerNames {
		signers = append(signers, f.signers[n])
	}
	out := filepath.Join(dir, "demo.airlock")
	if _, err := pack.Pack(context.Background(), spec, pack.Options{Output: out, Created: created, Signers: signers, Statement: st}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, b []byte, pol *policy.Policy, now time.Time) (*verify.Report, error) {
	t.Helper()
	rep, err := verify.Verify(context.Background(), bytes.NewReader(b), verify.Options{Policy: pol, Now: now})
	if rep == nil {
		t.Fatal("nil report")
	}
	if err == nil && !rep.Verified {
		t.Fatal("nil error but not verified")
	}
	if err != nil && rep.Verified {
		t.Fatalf("error %v but report says verified", err)
	}
	return rep, err
}

var soon = created.Add(time.Hour)

func TestVerifyTwoOfThree(t *testing.T) {
	t.Parallel()
	b := packDemo(t, bundle.StatementOptions{}, "release", "security")
	rep, err := run(t, b, defaultPolicy(t), soon)
	if err != nil {
		t.Fatalf("2-of-3 rejected: %v", err)
	}
	counted := 0
	for _, s := range rep.Signers {
		if s.Counted {
			counted++
		}
	}
	if counted != 2 || rep.Policy.Threshold != 2 || rep.Bundle.Name != "demo" || rep.Throughput.Bytes == 0 {
		t.Fatalf("report: %+v", rep)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
}

// rewriteHead decodes a bundle, lets f change the head entries, and
// re-encodes it (head frame, zero padding, body frame).
func rewriteHead(t *testing.T, b []byte, f func(name string, data []byte) []byte) []byte {
	t.Helper()
	h, err := bundle.ReadHead(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	var head, body bytes.Buffer
	hw, bw := tar.NewWriter(&head), tar.NewWriter(&body)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		w := bw
		if i < h.Entries {
			w = hw
			data = f(hdr.Name, data)
			hdr.Size = int64(len(data))
		}
		w.WriteHeader(hdr)
		w.Write(data)
	}
	hw.Flush()
	bw.Close()
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	out := enc.EncodeAll(head.Bytes(), nil)
	out = binary.LittleEndian.AppendUint32(out, 0x184D2A50)
	out = binary.LittleEndian.AppendUint32(out, 0)
	return append(out, enc.EncodeAll(body.Bytes(), nil)...)
}

func editEnvelope(t *testing.T, b []byte, f func(e *bundle.Envelope)) []byte {
	t.Helper()
	return rewriteHead(t, b, func(name string, data []byte) []byte {
		if name != bundle.EntrySignatures {
			return data
		}
		var e bundle.Envelope
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatal(err)
		}
		f(&e)
		out, _ := json.Marshal(e)
		return out
	})
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	pol := defaultPolicy(t)
	good := packDemo(t, bundle.StatementOptions{}, "release", "security")
	one := packDemo(t, bundle.StatementOptions{}, "release")
	cases := []struct {
		name string
		data func(t *testing.T) []byte
		pol  *policy.Policy
		now  time.Time
		want error
	}{
		{"unsigned", func(t *testing.T) []byte { return packDemo(t, bundle.StatementOptions{}) }, nil, soon, policy.ErrPolicy},
		{"threshold not met", func(t *testing.T) []byte { return one }, nil, soon, policy.ErrThreshold},
		{"only unknown keys", func(t *testing.T) []byte { return packDemo(t, bundle.StatementOptions{}, "outsider") }, nil, soon, policy.ErrThreshold},
		{"same key twice under two key ids", func(t *testing.T) []byte {
			return editEnvelope(t, one, func(e *bundle.Envelope) {
				dup := e.Signatures[0]
				dup.KeyID = "sha256:" + strings.Repeat("0", 64)
				e.Signatures = append(e.Signatures, dup)
			})
		}, nil, soon, policy.ErrThreshold},
		{"flipped signature byte", func(t *testing.T) []byte {
			return editEnvelope(t, good, func(e *bundle.Envelope) {
				raw, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
				raw[len(raw)/2] ^= 1
				e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(raw)
			})
		}, nil, soon, verify.ErrUntrusted},
		{"statement changed after signing", func(t *testing.T) []byte {
			return editEnvelope(t, good, func(e *bundle.Envelope) {
				p, _ := base64.StdEncoding.DecodeString(e.Payload)
				p = bytes.Replace(p, []byte(`"version":"1.0.0"`), []byte(`"version":"1.0.0","channel":"prod"`), 1)
				e.Payload = base64.StdEncoding.EncodeToString(p)
			})
		}, nil, soon, verify.ErrUntrusted},
		{"wrong payload type", func(t *testing.T) []byte {
			return editEnvelope(t, good, func(e *bundle.Envelope) { e.PayloadType = "application/json" })
		}, nil, soon, bundle.ErrPayloadType},
		{"envelope replayed from another bundle", func(t *testing.T) []byte {
			other := packDemoAt(t, created.Add(-time.Hour), bundle.StatementOptions{}, "release", "security")
			h, _ := bundle.ReadHead(bytes.NewReader(other))
			return rewriteHead(t, good, func(name string, data []byte) []byte {
				if name == bundle.EntrySignatures {
					return h.Signatures
				}
				return data
			})
		}, nil, soon, bundle.ErrStatement},
		{"expired", func(t *testing.T) []byte { return good }, nil, created.Add(91 * 24 * time.Hour), policy.ErrPolicy},
		{"not yet valid", func(t *testing.T) []byte { return good }, nil, created.Add(-24 * time.Hour), policy.ErrPolicy},
		{"no rule for the name", func(t *testing.T) []byte { return good }, writePolicyT(t, "other"), soon, policy.ErrNoRule},
		{"wrong channel", func(t *testing.T) []byte {
			return packDemo(t, bundle.StatementOptions{Channel: "staging"}, "release", "security")
		}, writePolicyChannel(t, "prod"), soon, policy.ErrPolicy},
		{"too old for maxAge", func(t *testing.T) []byte { return good }, writePolicyMaxAge(t, "1h"), created.Add(2 * time.Hour), policy.ErrPolicy},
		{"flipped body byte", func(t *testing.T) []byte {
			// Flip a byte deep in the body's compressed stream: the frame
			// no longer has its signed sha256.
			c := bytes.Clone(good)
			c[len(c)-200] ^= 0x40
			return c
		}, nil, soon, bundle.ErrIntegrity},
		{"truncated", func(t *testing.T) []byte { return good[:len(good)-300] }, nil, soon, bundle.ErrMalformed},
		{"extra frame appended", func(t *testing.T) []byte {
			enc, _ := zstd.NewWriter(nil)
			defer enc.Close()
			return append(bytes.Clone(good), enc.EncodeAll([]byte("x"), nil)...)
		}, nil, soon, bundle.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := pol
			if tc.pol != nil {
				p = tc.pol
			}
			_, err := run(t, tc.data(t), p, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !verify.IsFailure(err) {
				t.Fatalf("IsFailure(%v) = false", err)
			}
		})
	}
}

// Policy builders for the table; they run after getFixture.
func writePolicyT(t *testing.T, match string) *policy.Policy {
	return writePolicy(t, fmt.Sprintf("keys:\n  release: { publicKey: release.pub }\nbundles:\n  - match: %q\n    signers: [release]\n    threshold: 1\n", match))
}

func writePolicyChannel(t *testing.T, ch string) *policy.Policy {
	return writePolicy(t, fmt.Sprintf("keys:\n  release: { publicKey: release.pub }\n  security: { publicKey: security.pub }\nbundles:\n  - match: demo\n    signers: [release, security]\n    threshold: 2\n    channel: %s\n", ch))
}

func writePolicyMaxAge(t *testing.T, age string) *policy.Policy {
	return writePolicy(t, fmt.Sprintf("keys:\n  release: { publicKey: release.pub }\n  security: { publicKey: security.pub }\nbundles:\n  - match: demo\n    signers: [release, security]\n    threshold: 2\n    maxAge: %s\n", age))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

func TestVerifyNeedsPolicy(t *testing.T) {
	t.Parallel()
	_, err := verify.Verify(context.Background(), bytes.NewReader(nil), verify.Options{})
	if !errors.Is(err, verify.ErrNoPolicy) {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyIOErrorIsNotAFailure(t *testing.T) {
	t.Parallel()
	_, err := verify.Verify(context.Background(), iotestErr{}, verify.Options{Policy: defaultPolicy(t)})
	if err == nil || verify.IsFailure(err) {
		t.Fatalf("an I/O error must be 'could not verify', got %v", err)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
