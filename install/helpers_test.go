package install_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/internal/keys"
	packer "github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/policy"
)

// created is every test bundle's creation time; now is the one "now" of
// every test install.
var (
	created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now     = created.Add(time.Hour)
)

// fixture holds two signing keys and policies, made once per process.
type fixture struct {
	dir     string
	signers []bundle.Signer
	// policies by name: "default" (demo*, threshold 1), "downgrade"
	// (allowDowngrade: true), "prod" (channel prod).
	policies map[string]string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "airlock-install-test-")
		if err != nil {
			fixErr = err
			return
		}
		f := &fixture{dir: dir, policies: map[string]string{}}
		pw := []byte("test-password")
		for _, k := range []struct{ name, alg string }{{"release", "ecdsa-p256"}, {"security", "ed25519"}} {
			if _, err := keys.Generate(filepath.Join(dir, k.name), k.alg, pw); err != nil {
				fixErr = err
				return
			}
			s, err := keys.LoadSigner(filepath.Join(dir, k.name+".key"), func(bool) ([]byte, error) { return pw, nil })
			if err != nil {
				fixErr = err
				return
			}
			f.signers = append(f.signers, s)
		}
		head := "keys:\n  release: { publicKey: release.pub }\n  security: { publicKey: security.pub }\nbundles:\n  - match: \"demo*\"\n    signers: [release, security]\n    threshold: 2\n"
		for name, extra := range map[string]string{"default": "", "downgrade": "    allowDowngrade: true\n", "prod": "    channel: prod\n"} {
			p := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(p, []byte(head+extra), 0o644); err != nil {
				fixErr = err
				return
			}
			f.policies[name] = p
		}
		fix = f
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func loadPolicy(t testing.TB, name string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(getFixture(t).policies[name])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// release describes a test bundle.
type release struct {
	name     string
	version  string
	seq      uint64
	channel  string
	unsigned bool
	// salt changes the content without changing the version.
	salt string
	// big adds a model file of this many bytes.
	big int
}

// pack writes a signed bundle of files and a model whose content depends on
// version and salt, and returns its path. Files: a 0640 config, a 0755
// script, "{}" (a blob the head stores) and a copy of a model file (the body
// carries it once); the model has nested files and two identical ones.
func pack(t testing.TB, r release) string {
	t.Helper()
	if r.name == "" {
		r.name = "demo"
	}
	dir := t.TempDir()
	tag := r.version + r.salt
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	weights := bytes.Repeat([]byte("weights "+tag+" "), 8000)
	write("src/app.yaml", []byte("version: "+tag+"\nport: 8080\n"))
	write("src/run.sh", []byte("#!/bin/sh\necho "+tag+"\n"))
	write("src/empty.json", []byte("{}"))
	write("src/copy.bin", weights)
	write("src/model/weights.bin", weights)
	write("src/model/config.json", []byte(`{"version": "`+tag+`"}`))
	write("src/model/tokenizer/vocab.txt", []byte("a\nb\nc\n"+tag+"\n"))
	write("src/model/dup/a.txt", []byte("same\n"))
	write("src/model/dup/b.txt", []byte("same\n"))
	if r.big > 0 {
		big := make([]byte, r.big)
		for i := range big {
			big[i] = byte(i*7 + len(tag))
		}
		write("src/model/big.bin", big)
	}
	yml := fmt.Sprintf(`name: %s
version: %s
files:
  - {source: src/app.yaml, target: etc/app.yaml, mode: "0640"}
  - {source: src/run.sh, target: bin/run.sh, mode: "0755"}
  - {source: src/empty.json, target: etc/empty.json}
  - {source: src/copy.bin, target: share/copy.bin}
models:
  - {source: src/model, name: m, target: models/m}
`, r.name, r.version)
	spec, err := packer.ParseSpec(filepath.Join(dir, "airlock.yaml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, r.name+"-"+r.version+".airlock")
	opts := packer.Options{Output: out, Created: created, Statement: bundle.StatementOptions{Sequence: r.seq, Channel: r.channel}}
	if !r.unsigned {
		opts.Signers = getFixture(t).signers
	}
	if _, err := packer.Pack(context.Background(), spec, opts); err != nil {
		t.Fatal(err)
	}
	return out
}

// installFile runs install.Install on the bundle at path.
func installFile(t testing.TB, root, path string, pol *policy.Policy, mod ...func(*install.Options)) (*install.Result, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts := install.Options{Root: root, Policy: pol, Now: now, Path: path}
	for _, m := range mod {
		m(&opts)
	}
	return install.Install(context.Background(), f, opts)
}

func mustInstall(t testing.TB, root, path string, mod ...func(*install.Options)) *install.Result {
	t.Helper()
	res, err := installFile(t, root, path, loadPolicy(t, "default"), mod...)
	if err != nil {
		t.Fatalf("install %s: %v", filepath.Base(path), err)
	}
	return res
}

// snapshot describes every file and link under dir (directories only by
// their presence when empty), to compare trees byte for byte.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case d.IsDir():
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file %04o %s", uint32(info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), hex.EncodeToString(sum[:]))
		default:
			out[rel] = "other " + info.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnap(a, b map[string]string) string {
	var keys []string
	seen := map[string]bool{}
	for k := range a {
		keys, seen[k] = append(keys, k), true
	}
	for k := range b {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var d []string
	for _, k := range keys {
		if a[k] != b[k] {
			d = append(d, fmt.Sprintf("  %s: %q vs %q", k, a[k], b[k]))
		}
	}
	return strings.Join(d, "\n")
}

func sameSnap(a, b map[string]string) bool { return diffSnap(a, b) == "" }

// noStaging fails the test if a staging directory or temporary file is left.
func noStaging(t testing.TB, root string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(root, ".airlock"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "staging-") || strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("leftover %s in %s/.airlock", e.Name(), root)
		}
	}
	ents, _ = os.ReadDir(filepath.Join(root, "current"))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("leftover link %s", e.Name())
		}
	}
}

// --- crafting bundles that pack would never write ---

// craft rewrites an unsigned bundle: edit changes bundle.json and the OCI
// manifests of artifacts (decoded with UseNumber); every digest, size and
// the statement are recomputed, and the result is signed by the fixture's
// keys. It returns the path of the new bundle.
func craft(t testing.TB, unsignedPath string, edit func(m *bundle.Manifest, manifests map[int]map[string]any)) string {
	t.Helper()
	raw, err := os.ReadFile(unsignedPath)
	if err != nil {
		t.Fatal(err)
	}
	h, err := bundle.ReadHead(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	m := h.Manifest
	m.Artifacts = append([]bundle.Artifact(nil), h.Manifest.Artifacts...)
	manifests := map[int]map[string]any{}
	for i, a := range m.Artifacts {
		dec := json.NewDecoder(bytes.NewReader(h.Blobs[a.Digest]))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		manifests[i] = v
	}
	edit(&m, manifests)

	blobs := map[string][]byte{}
	for d, b := range h.Blobs {
		blobs[d] = b
	}
	for i := range m.Artifacts {
		a := &m.Artifacts[i]
		nb, err := json.Marshal(manifests[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(nb) == string(h.Blobs[a.Digest]) {
			continue
		}
		delete(blobs, a.Digest)
		d := digest(nb)
		blobs[d] = nb
		delta := int64(len(nb)) - a.Size
		a.Digest, a.Size = d, int64(len(nb))
		a.Bytes += delta
		m.Totals.Bytes += delta
	}
	// index.json
	var idx map[string]any
	dec := json.NewDecoder(bytes.NewReader(h.IndexBytes))
	dec.UseNumber()
	if err := dec.Decode(&idx); err != nil {
		t.Fatal(err)
	}
	ents := idx["manifests"].([]any)
	for i, e := range ents[:len(m.Artifacts)] {
		em := e.(map[string]any)
		em["digest"] = m.Artifacts[i].Digest
		em["size"] = m.Artifacts[i].Size
	}
	idxRaw, _ := json.Marshal(idx)
	m.Root = bundle.Descriptor{MediaType: bundle.MediaTypeOCIIndex, Digest: digest(idxRaw), Size: int64(len(idxRaw))}
	manRaw, _ := json.MarshalIndent(m, "", "  ")
	// statement
	payload, _ := base64.StdEncoding.DecodeString(h.Envelope.Payload)
	var st bundle.Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	st.Subject[0].Digest["sha256"] = strings.TrimPrefix(m.Root.Digest, "sha256:")
	st.Predicate.Manifest = bundle.Descriptor{MediaType: bundle.MediaTypeBundleManifest, Digest: digest(manRaw), Size: int64(len(manRaw))}
	stRaw, _ := json.Marshal(st)
	env := bundle.Envelope{PayloadType: bundle.PayloadType, Payload: base64.StdEncoding.EncodeToString(stRaw), Signatures: []bundle.EnvelopeSignature{}}
	envRaw, _ := json.Marshal(env)

	// Re-lay the head; copy the body frame as it is.
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	add := func(name string, data []byte) {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: created, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	add(bundle.EntryFormat, mustJSON(bundle.FormatMarker{Format: bundle.FormatName, Version: bundle.FormatVersion}))
	add(bundle.EntrySignatures, envRaw)
	add(bundle.EntryManifest, manRaw)
	if h.FramesBytes != nil {
		// The body is copied unchanged, so its frame index still holds.
		add(bundle.EntryFrames, h.FramesBytes)
	}
	add(bundle.EntryOCILayout, []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add(bundle.EntryIndex, idxRaw)
	names := make([]string, 0, len(blobs))
	for d := range blobs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		add("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), blobs[d])
	}
	tw.Flush()
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	out := enc.EncodeAll(head.Bytes(), nil)
	pad := bundle.HeadPadding
	out = binary.LittleEndian.AppendUint32(out, 0x184D2A50)
	out = binary.LittleEndian.AppendUint32(out, uint32(pad))
	out = append(out, make([]byte, pad)...)
	body := raw[h.HeadSize+h.PaddingSize:]
	out = append(out, body...)
	p := filepath.Join(t.TempDir(), "crafted.airlock")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.ReadHeadFile(p); err != nil {
		// The reader refuses it already: nothing to sign (the test
		// expects the refusal), but sign would fail; return as is.
		return p
	}
	if _, err := bundle.Sign(context.Background(), p, getFixture(t).signers); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// artifactIndex returns the index of the first artifact of kind with target.
func artifactIndex(m *bundle.Manifest, kind, target string) int {
	for i, a := range m.Artifacts {
		if a.Kind == kind && a.Target == target {
			return i
		}
	}
	panic("no artifact " + kind + " " + target)
}

// layers returns the layer list of a decoded manifest.
func layers(man map[string]any) []map[string]any {
	var out []map[string]any
	for _, l := range man["layers"].([]any) {
		out = append(out, l.(map[string]any))
	}
	return out
}

func setTarget(m *bundle.Manifest, manifests map[int]map[string]any, i int, target string) {
	m.Artifacts[i].Target = target
	manifests[i]["annotations"].(map[string]any)[bundle.AnnotationTarget] = target
}

var _ = io.EOF
