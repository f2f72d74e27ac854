package install_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
// want; the root (state and lock included) but exactly its audit log, and
// the canary must be byte for byte as before and no staging may be left.
// The audit log must have gained exactly one "refused" line of that class
// and still verify.
func expectUnchanged(t *testing.T, root, canary string, wantFailure bool, want error, f func() error) {
	t.Helper()
	expectRefused(t, root, canary, wantFailure, want, true, f)
}

// expectRefused is expectUnchanged; with logged false the refusal cannot
// be recorded (the root's state directory or lock is unsafe) and the whole
// root, audit log included, must be as before.
func expectRefused(t *testing.T, root, canary string, wantFailure bool, want error, logged bool, f func() error) {
	t.Helper()
	before, cbefore := snapshot(t, root), snapshot(t, canary)
	logBefore := readLog(t, root)
	if logged {
		before = snapshotButAudit(t, root)
	}
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
	after := snapshot(t, root)
	if logged {
		after = snapshotButAudit(t, root)
		oneRefusedLine(t, root, logBefore, "install", classOf(wantFailure))
	}
	if d := diffSnap(before, after); d != "" {
		t.Fatalf("the root changed:\n%s", d)
	}
	if !sameSnap(cbefore, snapshot(t, canary)) {
		t.Fatal("the canary outside the root changed")
	}
	noStaging(t, root)
	t.Logf("refused: %v", err)
}

// TestBadBundles crafts validly signed bundles with hostile install paths.
// The bundle reader refuses all of them (artifact targets and model file
// paths from layer annotations alike), so verify refuses them first.
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
		}, bundle.ErrMalformed},
		{"model file path absolute", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "/etc/passwd")
		}, bundle.ErrMalformed},
		{"model file path with a backslash", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, `..\..\escape`)
		}, bundle.ErrMalformed},
		{"model file path empty", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "")
		}, bundle.ErrMalformed},
		{"model file path missing", func(m *bundle.Manifest, ms map[int]map[string]any) {
			delete(layers(ms[model(m)])[0]["annotations"].(map[string]any), bundle.AnnotationFilepath)
		}, bundle.ErrMalformed},
		{"two model files, same path", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 1, layers(ms[model(m)])[0]["annotations"].(map[string]any)[bundle.AnnotationFilepath].(string))
		}, bundle.ErrMalformed},
		{"a model file where another needs a directory", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "tokenizer")
		}, bundle.ErrMalformed},
		{"a file artifact with two layers", func(m *bundle.Manifest, ms map[int]map[string]any) {
			i := artifactIndex(m, bundle.KindFile, "etc/app.yaml")
			ls := ms[i]["layers"].([]any)
			ms[i]["layers"] = append(ls, ls[0])
		}, bundle.ErrMalformed},
		// Issue 10: verify must refuse every path install refuses.
		{"model file path ../../../outside/x", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "../../../outside/x")
		}, bundle.ErrMalformed},
		{"model file path a/../../x", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "a/../../x")
		}, bundle.ErrMalformed},
		{"model file path sub/../config.json", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "sub/../config.json")
		}, bundle.ErrMalformed},
		{"two model files differing only in case", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setPath(ms[model(m)], 0, "Weights.bin")
			setPath(ms[model(m)], 1, "weights.bin")
		}, bundle.ErrMalformed},
		{"two targets differing only in case", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "bin/run.sh"), "etc/App.yaml")
		}, bundle.ErrMalformed},
		{"two targets differing only in Unicode normalisation", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "etc/app.yaml"), "etc/caf\u00e9.yaml")
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "bin/run.sh"), "etc/cafe\u0301.yaml")
		}, bundle.ErrMalformed},
		{"a target inside another, differing in case", func(m *bundle.Manifest, ms map[int]map[string]any) {
			setTarget(m, ms, artifactIndex(m, bundle.KindFile, "bin/run.sh"), "Models/M/extra.json")
		}, bundle.ErrMalformed},
		{"mode of three digits", func(m *bundle.Manifest, ms map[int]map[string]any) {
			i := artifactIndex(m, bundle.KindFile, "bin/run.sh")
			m.Artifacts[i].Mode = "755"
			ms[i]["annotations"].(map[string]any)[bundle.AnnotationMode] = "755"
		}, bundle.ErrMalformed},
		{"manifest without mediaType", func(m *bundle.Manifest, ms map[int]map[string]any) {
			delete(ms[artifactIndex(m, bundle.KindFile, "etc/app.yaml")], "mediaType")
		}, bundle.ErrMalformed},
		{"a file artifact claiming the model artifact type", func(m *bundle.Manifest, ms map[int]map[string]any) {
			ms[artifactIndex(m, bundle.KindFile, "etc/app.yaml")]["artifactType"] = bundle.ArtifactTypeModel
		}, bundle.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, canary := badRoot(t)
			b := craft(t, unsigned, tc.edit)
			var installErr error
			expectUnchanged(t, root, canary, true, tc.want, func() error {
				_, installErr = installFile(t, root, b, loadPolicy(t, "default"))
				return installErr
			})
			// verify refuses it first, with the same message.
			f, err := os.Open(b)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, verr := verify.Verify(context.Background(), f, verify.Options{Policy: loadPolicy(t, "default"), Now: created.Add(time.Hour)})
			if verr == nil || !verify.IsFailure(verr) {
				t.Fatalf("verify accepted what install refuses (%v)", installErr)
			}
			if verr.Error() != installErr.Error() {
				t.Fatalf("verify and install disagree:\nverify:  %v\ninstall: %v", verr, installErr)
			}
			// Strictness rules say which form is expected.
			if want := expectedForm[tc.name]; want != "" && !strings.Contains(verr.Error(), want) {
				t.Fatalf("the message does not say %q: %v", want, verr)
			}
		})
	}
}

// expectedForm is what the refusal of a strictness case of TestBadBundles
// must say about the accepted form.
var expectedForm = map[string]string{
	"mode of three digits":                                `exactly four octal digits starting with 0, such as "0640"`,
	"two targets differing only in case":                  "differs only in case or Unicode normalisation",
	"two targets differing only in Unicode normalisation": "differs only in case or Unicode normalisation",
	"two model files differing only in case":              "differs only in case or Unicode normalisation",
	"manifest without mediaType":                          "a manifest must state its own media type",
	"model file path a/../../x":                           "artifact 0 (model m)",
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
		unlogged  bool // the audit log cannot be reached safely
	}{
		{"releases is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, "releases"), filepath.Join(canary, "releases"))
			swap(root, "releases", filepath.Join(canary, "releases"))
		}, install.ErrUnsafeRoot, false},
		{"releases/NAME is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, "releases", "demo"), filepath.Join(canary, "demo"))
			swap(root, "releases/demo", filepath.Join(canary, "demo"))
		}, install.ErrUnsafeRoot, false},
		{"releases/NAME is a link inside the root", func(root, canary string) {
			os.Rename(filepath.Join(root, "releases", "demo"), filepath.Join(root, "elsewhere"))
			swap(root, "releases/demo", "../elsewhere")
		}, install.ErrUnsafeRoot, false},
		{"current is a link", func(root, canary string) { swap(root, "current", canary) }, install.ErrUnsafeRoot, false},
		{".airlock is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, ".airlock"), filepath.Join(canary, ".airlock"))
			swap(root, ".airlock", filepath.Join(canary, ".airlock"))
		}, install.ErrUnsafeRoot, true},
		{"releases is a file", func(root, canary string) { swap(root, "releases", "") }, install.ErrUnsafeRoot, false},
		{"current/NAME is a directory", func(root, canary string) {
			swap(root, "current/demo", "")
			os.Remove(filepath.Join(root, "current/demo"))
			os.Mkdir(filepath.Join(root, "current/demo"), 0o755)
		}, install.ErrUnsafeRoot, false},
		{"lock is a link", func(root, canary string) {
			os.WriteFile(filepath.Join(canary, "lock"), nil, 0o644)
			swap(root, ".airlock/lock", filepath.Join(canary, "lock"))
		}, install.ErrUnsafeRoot, true},
		{"state is a link", func(root, canary string) {
			copyTree(t, filepath.Join(root, ".airlock", "state.json"), filepath.Join(canary, "state.json"))
			swap(root, ".airlock/state.json", filepath.Join(canary, "state.json"))
		}, install.ErrState, false},
		{"state is a directory", func(root, canary string) {
			os.Remove(filepath.Join(root, ".airlock", "state.json"))
			os.Mkdir(filepath.Join(root, ".airlock", "state.json"), 0o755)
		}, install.ErrState, false},
		{"state is garbage", func(root, canary string) {
			os.WriteFile(filepath.Join(root, ".airlock", "state.json"), []byte("{\"schemaVersion\": 1, \"bund"), 0o644)
		}, install.ErrState, false},
		{"state has a duplicate key", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.Replace(s, `"schemaVersion": 1,`, `"schemaVersion": 1, "schemaVersion": 1,`, 1)
			})
		}, install.ErrState, false},
		{"state lowers the highest sequence below a release", func(root, canary string) {
			editState(t, root, func(s string) string { return strings.Replace(s, `"highestSequence": 10`, `"highestSequence": 1`, 1) })
		}, install.ErrState, false},
		{"state names a current release that is not installed", func(root, canary string) {
			editState(t, root, func(s string) string { return strings.Replace(s, `"current": "1.0.0"`, `"current": "0.1.0"`, 1) })
		}, install.ErrState, false},
		{"state puts a file outside the release", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.Replace(s, `"target": "etc/app.yaml"`, `"target": "../../../etc/app.yaml"`, 1)
			})
		}, install.ErrState, false},
		{"state has a version that is a path", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.ReplaceAll(s, `"1.0.0"`, `"../../x"`)
			})
		}, install.ErrState, false},
		{"state from a future schema", func(root, canary string) {
			editState(t, root, func(s string) string { return strings.Replace(s, `"schemaVersion": 1`, `"schemaVersion": 2`, 1) })
		}, install.ErrState, false},
		{"state has an unknown field", func(root, canary string) {
			editState(t, root, func(s string) string {
				return strings.Replace(s, `"schemaVersion": 1,`, `"schemaVersion": 1, "trust": "all",`, 1)
			})
		}, install.ErrState, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, canary := badRoot(t)
			tc.breakRoot(root, canary)
			expectRefused(t, root, canary, false, tc.want, !tc.unlogged, func() error {
				_, err := installFile(t, root, v2, loadPolicy(t, "default"))
				return err
			})
			if errors.Is(tc.want, install.ErrState) {
				// Every damaged state is repairable from the records but a
				// newer airlock's, which is left alone.
				_, err := installFile(t, root, v2, loadPolicy(t, "default"))
				var se *install.StateError
				future := tc.name == "state from a future schema"
				if !errors.As(err, &se) || se.Repairable == future {
					t.Fatalf("err = %v, want a *StateError with Repairable %v", err, !future)
				}
				before := idle(snapshot(t, root))
				done, rerr := install.Repair(t.Context(), root)
				if future {
					if !errors.As(rerr, &se) || !sameSnap(before, idle(snapshot(t, root))) {
						t.Fatalf("repair of a newer airlock's state: %v; changed: %s", rerr, diffSnap(before, idle(snapshot(t, root))))
					}
					return
				}
				if rerr != nil {
					t.Fatalf("repair: %v", rerr)
				}
				st, err := install.ReadStatus(t.Context(), root)
				if err != nil || st.Bundles[0].HighestSequence != 10 || st.Bundles[0].Current != "1.0.0" {
					t.Fatalf("after the repair (%q): %+v %v", done, st, err)
				}
				mustInstall(t, root, v2)
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
// written (not in the state, and no record says airlock wrote it) is
// neither followed nor removed: the install is refused and changes nothing;
// once the operator moves it away, the install completes.
func TestLeftoverInRootIsNotFollowed(t *testing.T) {
	t.Parallel()
	root, canary := badRoot(t)
	cbefore := snapshot(t, canary)
	link := filepath.Join(root, "releases", "demo", "2.0.0")
	os.Symlink(canary, link)
	os.Symlink(canary, filepath.Join(root, ".airlock", "staging-0123"))
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	if _, err := installFile(t, root, v2, loadPolicy(t, "default")); !errors.Is(err, install.ErrUnsafeRoot) {
		t.Fatalf("install over a foreign link: %v, want ErrUnsafeRoot", err)
	}
	if got, err := os.Readlink(link); err != nil || got != canary {
		t.Fatalf("the foreign link was changed: %q %v", got, err)
	}
	if !sameSnap(cbefore, snapshot(t, canary)) {
		t.Fatal("canary changed")
	}
	os.Remove(link)
	mustInstall(t, root, v2)
	if !sameSnap(cbefore, snapshot(t, canary)) {
		t.Fatal("canary changed")
	}
	fi, err := os.Lstat(link)
	if err != nil || !fi.IsDir() {
		t.Fatalf("release dir: %v %v", fi, err)
	}
	if _, err := install.Check(t.Context(), root); err != nil {
		t.Fatal(err)
	}
}

// TestReplayAfterStateLoss (issue 10): deleting state.json, or restoring an
// older copy, must not re-enable an older bundle. Every command that changes
// the root refuses until Repair rebuilds the state from the release
// records, and the rebuilt state refuses the replay.
func TestReplayAfterStateLoss(t *testing.T) {
	t.Parallel()
	v1 := pack(t, release{version: "1.0.0", seq: 10})
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	v3 := pack(t, release{version: "3.0.0", seq: 30})
	ctx := context.Background()

	t.Run("state deleted", func(t *testing.T) {
		t.Parallel()
		root := filepath.Join(t.TempDir(), "root")
		mustInstall(t, root, v1)
		mustInstall(t, root, v2)
		if err := os.Remove(install.StatePath(root)); err != nil {
			t.Fatal(err)
		}
		canary := t.TempDir()
		expectUnchanged(t, root, canary, false, install.ErrStateBehind, func() error {
			_, err := installFile(t, root, v1, loadPolicy(t, "default"))
			return err
		})
		if _, err := install.Check(ctx, root); !errors.Is(err, install.ErrStateBehind) {
			t.Fatalf("check with the state deleted: err = %v, want the state behind the records", err)
		}
		done, err := install.Repair(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("repaired: %q", done)
		st, err := install.ReadStatus(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		b := st.Bundles[0]
		if b.HighestSequence != 20 || b.Current != "2.0.0" || len(b.Releases) != 2 {
			t.Fatalf("rebuilt: highest %d, current %q, %d releases; want 20, 2.0.0, 2", b.HighestSequence, b.Current, len(b.Releases))
		}
		expectUnchanged(t, root, canary, true, install.ErrReplay, func() error {
			_, err := installFile(t, root, pack(t, release{version: "1.5.0", seq: 15}), loadPolicy(t, "default"))
			return err
		})
		mustInstall(t, root, v3)
		if _, err := install.Check(ctx, root); err != nil {
			t.Fatalf("check after the repair: %v", err)
		}
	})

	t.Run("older state restored", func(t *testing.T) {
		t.Parallel()
		root := filepath.Join(t.TempDir(), "root")
		mustInstall(t, root, v1)
		old := mustRead(t, install.StatePath(root))
		mustInstall(t, root, v2)
		if err := os.WriteFile(install.StatePath(root), old, 0o644); err != nil {
			t.Fatal(err)
		}
		expectUnchanged(t, root, t.TempDir(), false, install.ErrStateBehind, func() error {
			_, err := installFile(t, root, pack(t, release{version: "1.5.0", seq: 15}), loadPolicy(t, "default"))
			return err
		})
	})

	t.Run("highest release pruned, then state deleted", func(t *testing.T) {
		t.Parallel()
		root := filepath.Join(t.TempDir(), "root")
		mustInstall(t, root, v1)
		mustInstall(t, root, v2)
		if _, err := install.Rollback(ctx, root, "demo", install.RollbackOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := install.Prune(ctx, root, 1, install.PruneOptions{}); err != nil {
			t.Fatal(err)
		}
		os.Remove(install.StatePath(root))
		if _, err := install.Repair(ctx, root); err != nil {
			t.Fatal(err)
		}
		st, _ := install.ReadStatus(ctx, root)
		if b := st.Bundles[0]; b.HighestSequence != 20 || b.Current != "1.0.0" {
			t.Fatalf("rebuilt: highest %d, current %q; want 20 (from the pruned release's record), 1.0.0", b.HighestSequence, b.Current)
		}
		expectUnchanged(t, root, t.TempDir(), true, install.ErrReplay, func() error {
			_, err := installFile(t, root, pack(t, release{version: "1.5.0", seq: 15}), loadPolicy(t, "default"))
			return err
		})
	})

	t.Run("whole .airlock directory deleted", func(t *testing.T) {
		t.Parallel()
		root := filepath.Join(t.TempDir(), "root")
		mustInstall(t, root, v2)
		os.RemoveAll(filepath.Join(root, ".airlock"))
		_, err := installFile(t, root, v1, loadPolicy(t, "default"))
		if !errors.Is(err, install.ErrStateBehind) {
			t.Fatalf("err = %v, want the state to be behind the records", err)
		}
		if _, err := os.Stat(install.ReleaseDir(root, "demo", "2.0.0")); err != nil {
			t.Fatalf("the installed release was touched: %v", err)
		}
	})
}

// TestInterruptedPruneRepair: a prune stopped after its state write leaves a
// release directory; the repair names the prune, not an install.
func TestInterruptedPruneRepair(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	mustInstall(t, root, pack(t, release{version: "1.0.0", seq: 10}))
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
	func() {
		defer func() { recover() }()
		install.Prune(context.Background(), root, 1, install.PruneOptions{Failpoint: func(n string) {
			if n == install.FailpointAfterState {
				panic("stop")
			}
		}})
	}()
	st, err := install.ReadStatus(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	// The repair names the prune (and completes its audit entry); nothing
	// is put down to an install.
	named := false
	for _, r := range st.Repaired {
		named = named || strings.Contains(r, "left by a prune that did not complete")
		if strings.Contains(r, "install") {
			t.Errorf("repair blames an install: %q", r)
		}
	}
	if !named {
		t.Fatalf("repaired = %q", st.Repaired)
	}
}

// TestCheckDuringMaintenance (issue 10): `check` running in a loop while a
// prune and a rollback change the root must never report drift or fail on
// a directory that vanished: it shares the root's lock with readers only.
func TestCheckDuringMaintenance(t *testing.T) {
	t.Parallel()
	var bundles []string
	for i, v := range []string{"1.0.0", "2.0.0", "3.0.0", "4.0.0"} {
		bundles = append(bundles, pack(t, release{version: v, seq: uint64(10 * (i + 1)), big: 1 << 20}))
	}
	ctx := context.Background()
	for round := 0; round < 4; round++ {
		root := filepath.Join(t.TempDir(), "root")
		for _, b := range bundles {
			mustInstall(t, root, b)
		}
		stop := make(chan struct{})
		errs := make(chan error, 1)
		checks, locked := 0, 0
		go func() {
			defer close(errs)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := install.Check(ctx, root)
				checks++
				if errors.Is(err, install.ErrLocked) {
					locked++
					continue
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		for i := 0; i < 3; i++ {
			for {
				_, err := install.Rollback(ctx, root, "demo", install.RollbackOptions{})
				if !errors.Is(err, install.ErrLocked) {
					if err != nil {
						t.Fatal(err)
					}
					break
				}
			}
		}
		for {
			_, err := install.Prune(ctx, root, 1, install.PruneOptions{})
			if !errors.Is(err, install.ErrLocked) {
				if err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		close(stop)
		if err := <-errs; err != nil {
			t.Fatalf("round %d: check during maintenance: %v", round, err)
		}
		t.Logf("round %d: %d checks, %d found the root locked", round, checks, locked)
	}
}
