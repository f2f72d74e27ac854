package install_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/verify"
)

// badRoot installs v1 into a fresh root and returns it with a canary
// directory outside it.
func badRoot(t *testing.T) (root, canary string) {
	t.Helper()
	base := t.TempDir()
	root, canary = filepath.Join(base, "root"), filepath.Join(base, "canary")
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
	os.MkdirAll(filepath.Join(canary, "etc"), 0o755)
	os.WriteFile(filepath.Join(canary, "etc", "app.yaml"), []byte("canary"), 0o600)
	return root, canary
}

// expectUnchanged runs f, which must fail as class wantFailure (a
// verification failure, exit 3) or not (exit 1), with an error matching
// want; the root (state and lock included) and the canary must be byte for
// byte as before and no staging may be left.
func expectUnchanged(t *testing.T, root, canary string, wantFailure bool, want error, f func() error) {
	t.Helper()
	before, cbefore := snapshot(t, root), snapshot(t, canary)
	err := f()
	if err == nil {
		t.Fatal("accepted")
	}
	if verify.IsFailure(err) != wantFailure {
		t.Fatalf("IsFailure(%v) = %v, want %v", err, !wantFailure, wantFailure)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if d := diffSnap(before, snapshot(t, root)); d != "" {
		t.Fatalf("the root changed:\n%s", d)
	}
	if !sameSnap(cbefore, snapshot(t, canary)) {
		t.Fatal("the canary outside the root changed")
	}
	noStaging(t, root)
	t.Logf("refused: %v", err)
}

// TestBadBundles crafts validly signed bundles with hostile install paths.
// Artifact targets are refused by the bundle reader; model file paths come
// from layer annotations and are refused by install.
func TestBadBundles(t *testing.T) {
	t.Parallel()
	unsigned := pack(t, release{version: "2.0.0", seq: 20, unsigned: true})
	model := func(m *bundle.Manifest) int { return artifactIndex(m, bundle.KindModel, "models/m") }
	setPath := func(man map[string]any, i int, p string) {
		layers(man)[i]["annotations"].(map[string]any)[bundle.AnnotationFilepath] = p
	}
	cases := []struct {
		name string
		edit func(m *bundle.Manifest, ms map[int]map[string]any)
		want error
	}{
		{"file target with ..", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "etc/app.yaml"), "../escape.yaml")
		}, bundle.ErrMalformed},
		{"file target ../ inside", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "etc/app.yaml"), "etc/../../escape.yaml")
		}, bundle.ErrMalformed},
		{"absolute file target", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "etc/app.yaml"), "/etc/passwd")
		}, bundle.ErrMalformed},
		{"two artifacts, same target", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "bin/run.sh"), "etc/app.yaml")
		}, bundle.ErrMalformed},
		{"file target is the model's directory", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "bin/run.sh"), "models/m/weights.bin")
		}, bundle.ErrMalformed},
		{"a file where another artifact needs a directory", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "bin/run.sh"), "models")
		}, bundle.ErrMalformed},
		{"model file path with ..", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "../../../escape")
		}, install.ErrUnsafeTarget},
		{"model file path absolute", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "/etc/passwd")
		}, install.ErrUnsafeTarget},
		{"model file path with a backslash", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, `..\..\escape`)
		}, install.ErrUnsafeTarget},
		{"model file path empty", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "")
		}, install.ErrUnsafeTarget},
		{"model file path missing", func(m *bundle.Manifest, ms map[int]map[string]any) {
			delete(layers(ms[model(m)])[0]["annotations"].(map[string]any), bundle.AnnotationFilepath)
		}, install.ErrUnsafeTarget},
		{"two model files, same path", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 1, layers(ms[model(m)])[0]["annotations"].(map[string]any)[bundle.AnnotationFilepath].(string))
		}, install.ErrUnsafeTarget},
		{"a model file where another needs a directory", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "tokenizer")
		}, install.ErrUnsafeTarget},
		{"a file artifact with two layers", func(m *bundle.Manifest, ms map[int]map[string]any) {
			i := artifactIndex(m, bundle.KindFile, "etc/app.yaml")
			ls := ms[i]["layers"].([]any)
			ms[i]["layers"] = append(ls, ls[0])
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, canary := badRoot(t)
			b := craft(t, unsigned, tc.edit)
			expectUnchanged(t, root, canary, true, tc.want, func() error {
				_, err := installFile(t, root, b, loadPolicy(t, "default"))
				return err
			})
		})
	}
}

// TestBadBundleBytes: tampered or cut bundles fail in the body, after files
// were staged; the staging is removed and nothing else changes.
func TestBadBundleBytes(t *testing.T) {
	t.Parallel()
	good := pack(t, release{version: "2.0.0", seq: 20})
	raw, _ := os.ReadFile(good)
	cases := map[string][]byte{
		"flipped byte near the end": func() []byte { c := append([]byte(nil), raw...); c[len(c)-100] ^= 1; return c }(),
		"truncated":                 raw[:len(raw)-300],
		"unsigned":                  mustRead(t, pack(t, release{version: "2.0.0", seq: 20, unsigned: true})),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root, canary := badRoot(t)
			p := filepath.Join(t.TempDir(), "bad.airlock")
			os.WriteFile(p, data, 0o644)
			expectUnchanged(t, root, canary, true, nil, func() error {
				_, err := installFile(t, root, p, loadPolicy(t, "default"))
				return err
			})
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadRoot places links and files where airlock owns directories, and
// tampers with the state: install fails closed (exit class 1) and follows
// nothing.
func TestBadRoot(t *testing.T) {
	t.Parallel()
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	swap := func(root, rel, linkTo string) {
		p := filepath.Join(root, rel)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if linkTo == "" {
			os.WriteFile(p, []byte("not a directory"), 0o644)
			return
		}
		if err := os.Symlink(linkTo, p); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name      string
		breakRoot func(root, canary string)
		want      error
	}{
		{"releases is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, "releases"), filepath.Join(canary, "releases"))
			swap(root, "releases", filepath.Join(canary, "releases"))
		}, install.ErrUnsafeRoot},
		{"releases/NAME is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, "releases", "demo"), filepath.Join(canary, "demo"))
			swap(root, "releases/demo", filepath.Join(canary, "demo"))
		}, install.ErrUnsafeRoot},
		{"releases/NAME is a link inside the root", func(root, canary string) {
			os.Rename(filepath.Join(root, "releases", "demo"), filepath.Join(root, "elsewhere"))
			swap(root, "releases/demo", "../elsewhere")
		}, install.ErrUnsafeRoot},
		{"current is a link", func(root, canary string) { swap(root, "current", canary) }, install.ErrUnsafeRoot},
		{".airlock is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, ".airlock"), filepath.Join(canary, ".airlock"))
			swap(root, ".airlock", filepath.Join(canary, ".airlock"))
		}, install.ErrUnsafeRoot},
		{"releases is a file", func(root, canary string) { swap(root, "releases", "") }, install.ErrUnsafeRoot},
		{"current/NAME is a directory", func(root, canary string) {
			swap(root, "current/demo", "")
			os.Remove(filepath.Join(root, "current/demo"))
			os.Mkdir(filepath.Join(root, "current/demo"), 0o755)
		}, install.ErrUnsafeRoot},
		{"lock is a link", func(root, canary string) {
			os.WriteFile(filepath.Join(canary, "lock"), nil, 0o644)
			swap(root, ".airlock/lock", filepath.Join(canary, "lock"))
		}, install.ErrUnsafeRoot},
		{"state is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, ".airlock", "state.json"), filepath.Join(canary, "state.json"))
			swap(root, ".airlock/state.json", filepath.Join(canary, "state.json"))
		}, install.ErrState},
		{"state is a directory", func(root, canary string) {
			os.Remove(filepath.Join(root, ".airlock", "state.json"))
			os.Mkdir(filepath.Join(root, ".airlock", "state.json"), 0o755)
		}, install.ErrState},
		{"state is garbage", func(root, canary string) {
			os.WriteFile(filepath.Join(root, ".airlock", "state.json"), []byte("{\"schemaVersion\": 1, \"bund"), 0o644)
		}, install.ErrState},
		{"state has a duplicate key", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.Replace(s, `"schemaVersion": 1,`, `"schemaVersion": 1, "schemaVersion": 1,`, 1)
			})
		}, install.ErrState},
		{"state lowers the highest sequence below a release", func(root, canary string) {
			editState(t, root, func(s string) string { return strings.Replace(s, `"highestSequence": 10`, `"highestSequence": 1`, 1) })
		}, install.ErrState},
		{"state names a current release that is not installed", func(root, canary string) {
			editState(t, root, func(s string) string { return strings.Replace(s, `"current": "1.0.0"`, `"current": "0.1.0"`, 1) })
		}, install.ErrState},
		{"state puts a file outside the release", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.Replace(s, `"target": "etc/app.yaml"`, `"target": "../../../etc/app.yaml"`, 1)
			})
		}, install.ErrState},
		{"state has a version that is a path", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.ReplaceAll(s, `"1.0.0"`, `"../../x"`)
			})
		}, install.ErrState},
		{"state from a future schema", func(root, canary string) {
			editState(t, root, func(s string) string { return strings.Replace(s, `"schemaVersion": 1`, `"schemaVersion": 2`, 1) })
		}, install.ErrState},
		{"state has an unknown field", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.Replace(s, `"schemaVersion": 1,`, `"schemaVersion": 1, "trust": "all",`, 1)
			})
		}, install.ErrState},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, canary := badRoot(t)
			tc.breakRoot(root, canary)
			expectUnchanged(t, root, canary, false, tc.want, func() error {
				_, err := installFile(t, root, v2, loadPolicy(t, "default"))
				return err
			})
			if errors.Is(tc.want, install.ErrState) {
				_, err := installFile(t, root, v2, loadPolicy(t, "default"))
				if !strings.Contains(err.Error(), "restore it from a backup") || !strings.Contains(err.Error(), "nothing was changed") {
					t.Fatalf("no recovery instructions: %v", err)
				}
			}
		})
	}
}

func editState(t *testing.T, root string, f func(string) string) {
	t.Helper()
	p := filepath.Join(root, ".airlock", "state.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := f(string(b))
	if n == string(b) {
		t.Fatal("state edit changed nothing")
	}
	os.WriteFile(p, []byte(n), 0o644)
}

// TestLeftoverInRootIsNotFollowed: a link placed where a release will be
// written (not in the state, so a leftover) is removed, not followed.
func TestLeftoverInRootIsNotFollowed(t *testing.T) {
	t.Parallel()
	root, canary := badRoot(t)
	cbefore := snapshot(t, canary)
	os.Symlink(canary, filepath.Join(root, "releases", "demo", "2.0.0"))
	os.Symlink(canary, filepath.Join(root, ".airlock", "staging-0123"))
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
	if !sameSnap(cbefore, snapshot(t, canary)) {
		t.Fatal("canary changed")
	}
	fi, err := os.Lstat(filepath.Join(root, "releases", "demo", "2.0.0"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("release dir: %v %v", fi, err)
	}
	if _, err := install.Check(t.Context(), root); err != nil {
		t.Fatal(err)
	}
}
