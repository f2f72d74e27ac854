package install_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/verify"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		crashChild()
		return
	}
	code := m.Run()
	if fix != nil {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

func TestInstallPlacesFilesAndModels(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	b := pack(t, release{version: "1.0.0", seq: 10})
	res := mustInstall(t, root, b)
	if res.Outcome != install.OutcomeInstalled || res.Name != "demo" || res.Version != "1.0.0" || res.Files != 9 || res.Previous != "" {
		t.Fatalf("result: %+v", res)
	}
	rel := filepath.Join(root, "releases", "demo", "1.0.0")
	want := map[string]os.FileMode{
		"etc/app.yaml": 0o640, "bin/run.sh": 0o755, "etc/empty.json": 0o644, "share/copy.bin": 0o644,
		"models/m/weights.bin": 0o644, "models/m/config.json": 0o644, "models/m/tokenizer/vocab.txt": 0o644,
		"models/m/dup/a.txt": 0o644, "models/m/dup/b.txt": 0o644,
	}
	for p, mode := range want {
		fi, err := os.Lstat(filepath.Join(rel, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(rel, "etc/empty.json")); string(b) != "{}" {
		t.Errorf("empty.json = %q", b)
	}
	a, _ := os.ReadFile(filepath.Join(rel, "share/copy.bin"))
	w, _ := os.ReadFile(filepath.Join(rel, "models/m/weights.bin"))
	if len(a) == 0 || string(a) != string(w) {
		t.Error("a blob shared by two files was not written to both")
	}
	link, err := os.Readlink(filepath.Join(root, "current", "demo"))
	if err != nil || link != "../releases/demo/1.0.0" {
		t.Fatalf("current link %q %v", link, err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "current", "demo", "etc", "app.yaml")); !strings.Contains(string(got), "1.0.0") {
		t.Fatalf("through the link: %q", got)
	}
	lock, _ := os.ReadFile(filepath.Join(root, ".airlock", "lock"))
	if len(lock) != 0 {
		t.Fatalf("lock left with %q", lock)
	}
	noStaging(t, root)

	st, err := install.ReadStatus(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Bundles) != 1 || st.Bundles[0].Current != "1.0.0" || st.Bundles[0].HighestSequence != 10 || len(st.Bundles[0].Releases[0].Signers) != 2 || st.ReadOnly != "" || len(st.Repaired) != 0 {
		t.Fatalf("status: %+v", st)
	}
	if _, err := install.Check(context.Background(), root); err != nil {
		t.Fatalf("check after install: %v", err)
	}
}

func TestUpgradeReplayRollbackPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	v1 := pack(t, release{version: "1.0.0", seq: 10})
	v2 := pack(t, release{version: "1.1.0", seq: 20})
	v3 := pack(t, release{version: "1.2.0", seq: 30})
	mustInstall(t, root, v1)
	res := mustInstall(t, root, v2)
	if res.Outcome != install.OutcomeInstalled || res.Previous != "1.0.0" {
		t.Fatalf("upgrade: %+v", res)
	}

	// Identical bundle again: a no-op that says so, the state unchanged.
	before := snapshot(t, root)
	res = mustInstall(t, root, v2)
	if res.Outcome != install.OutcomeUnchanged {
		t.Fatalf("reinstall: %+v", res)
	}
	if d := diffSnap(before, snapshot(t, root)); d != "" {
		t.Fatalf("a no-op changed the root:\n%s", d)
	}
	// ... and it repairs a link a crash left pointing elsewhere.
	os.Remove(filepath.Join(root, "current", "demo"))
	os.Symlink("../releases/demo/1.0.0", filepath.Join(root, "current", "demo"))
	res = mustInstall(t, root, v2)
	if res.Outcome != install.OutcomeUnchanged || len(res.Repaired) == 0 {
		t.Fatalf("repair: %+v", res)
	}
	if d := diffSnap(before, snapshot(t, root)); d != "" {
		t.Fatalf("repair did not restore the root:\n%s", d)
	}

	// Replay of the older bundle: refused, exit class 3, nothing changed
	// but one refused line in the audit log.
	logBefore := readLog(t, root)
	_, err := installFile(t, root, v1, loadPolicy(t, "default"))
	if !errors.Is(err, install.ErrReplay) || !verify.IsFailure(err) {
		t.Fatalf("replay: %v", err)
	}
	oneRefusedLine(t, root, logBefore, audit.OpInstall, audit.ClassRejected)
	delete(before, auditFile)
	if d := diffSnap(before, snapshotButAudit(t, root)); d != "" {
		t.Fatalf("a refused replay changed the root:\n%s", d)
	}

	// Rollback: current back to 1.0.0; highest sequence unchanged.
	rb, err := install.Rollback(ctx, root, "demo", install.RollbackOptions{Now: now})
	if err != nil || rb.From != "1.1.0" || rb.To != "1.0.0" {
		t.Fatalf("rollback: %+v %v", rb, err)
	}
	st, _ := install.ReadStatus(ctx, root)
	if st.Bundles[0].Current != "1.0.0" || st.Bundles[0].HighestSequence != 20 || st.Bundles[0].LastChange.Action != install.ActionRollback {
		t.Fatalf("after rollback: %+v", st.Bundles[0])
	}
	if _, err := install.Rollback(ctx, root, "demo", install.RollbackOptions{}); !errors.Is(err, install.ErrNotInstalled) {
		t.Fatalf("rollback past the oldest: %v", err)
	}
	if _, err := install.Rollback(ctx, root, "other", install.RollbackOptions{}); !errors.Is(err, install.ErrNotInstalled) {
		t.Fatalf("rollback of an unknown name: %v", err)
	}
	// The rolled-back-from bundle may be installed again (roll forward).
	res = mustInstall(t, root, v2)
	if res.Outcome != install.OutcomeSwitched {
		t.Fatalf("roll forward: %+v", res)
	}
	mustInstall(t, root, v3)

	// Prune keeps the newest two.
	pr, err := install.Prune(ctx, root, 2, install.PruneOptions{})
	if err != nil || len(pr.Removed) != 1 || pr.Removed[0].Version != "1.0.0" {
		t.Fatalf("prune: %+v %v", pr, err)
	}
	if _, err := os.Stat(filepath.Join(root, "releases", "demo", "1.0.0")); !os.IsNotExist(err) {
		t.Fatalf("pruned release still there: %v", err)
	}
	// A pruned release cannot come back from its old bundle.
	if _, err := installFile(t, root, v1, loadPolicy(t, "default")); !errors.Is(err, install.ErrReplay) {
		t.Fatalf("pruned replay: %v", err)
	}
	if _, err := install.Check(ctx, root); err != nil {
		t.Fatalf("check: %v", err)
	}
	if _, err := install.Prune(ctx, root, 0, install.PruneOptions{}); err == nil {
		t.Fatal("prune --keep 0 accepted")
	}
}

func TestFreshnessRules(t *testing.T) {
	t.Parallel()
	v1 := pack(t, release{version: "1.0.0", seq: 10})
	v2 := pack(t, release{version: "2.0.0", seq: 20})
	cases := []struct {
		name   string
		bundle func(t *testing.T) string
		policy string
		allow  bool
		want   error
	}{
		{"lower sequence", func(t *testing.T) string { return pack(t, release{version: "0.9.0", seq: 5}) }, "default", false, install.ErrReplay},
		{"same sequence, other bundle", func(t *testing.T) string { return pack(t, release{version: "2.0.1", seq: 20}) }, "default", false, install.ErrReplay},
		{"same version, other content", func(t *testing.T) string { return pack(t, release{version: "2.0.0", seq: 25, salt: "x"}) }, "default", false, install.ErrReplay},
		{"same version and content, new sequence", func(t *testing.T) string { return pack(t, release{version: "2.0.0", seq: 26}) }, "default", false, install.ErrReplay},
		{"earlier version, reused sequence", func(t *testing.T) string { return pack(t, release{version: "3.0.0", seq: 10}) }, "default", false, install.ErrReplay},
		{"downgrade without the policy", func(t *testing.T) string { return pack(t, release{version: "0.9.0", seq: 5}) }, "default", true, install.ErrDowngradeNotAllowed},
		{"downgrade without the flag", func(t *testing.T) string { return pack(t, release{version: "0.9.0", seq: 5}) }, "downgrade", false, install.ErrReplay},
		{"sequence 2^64-1", func(t *testing.T) string { return pack(t, release{version: "9.0.0", seq: ^uint64(0)}) }, "default", false, install.ErrSequenceJump},
		{"sequence 10 years and a second ahead", func(t *testing.T) string {
			return pack(t, release{version: "9.0.0", seq: uint64(now.Unix()) + install.MaxSequenceJump + 1})
		}, "default", false, install.ErrSequenceJump},
		{"another channel", func(t *testing.T) string { return pack(t, release{version: "3.0.0", seq: 30, channel: "staging"}) }, "prod", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			mustInstall(t, root, v1)
			mustInstall(t, root, v2)
			canary := t.TempDir()
			os.WriteFile(filepath.Join(canary, "x"), []byte("canary"), 0o644)
			before, cbefore, logBefore := snapshotButAudit(t, root), snapshot(t, canary), readLog(t, root)
			_, err := installFile(t, root, tc.bundle(t), loadPolicy(t, tc.policy), func(o *install.Options) { o.AllowDowngrade = tc.allow })
			if err == nil || !verify.IsFailure(err) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v (a verification failure)", err, tc.want)
			}
			oneRefusedLine(t, root, logBefore, audit.OpInstall, audit.ClassRejected)
			if d := diffSnap(before, snapshotButAudit(t, root)); d != "" {
				t.Fatalf("root changed:\n%s", d)
			}
			if !sameSnap(cbefore, snapshot(t, canary)) {
				t.Fatal("canary changed")
			}
			noStaging(t, root)
		})
	}
}

func TestAllowedDowngradeAndJumps(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mustInstall(t, root, pack(t, release{version: "2.0.0", seq: 20}))
	old := pack(t, release{version: "1.0.0", seq: 10})
	res, err := installFile(t, root, old, loadPolicy(t, "downgrade"), func(o *install.Options) { o.AllowDowngrade = true })
	if err != nil || !res.Downgrade || res.Outcome != install.OutcomeInstalled {
		t.Fatalf("allowed downgrade: %+v %v", res, err)
	}
	st, _ := install.ReadStatus(context.Background(), root)
	if b := st.Bundles[0]; b.Current != "1.0.0" || b.HighestSequence != 20 || b.LastChange.Action != install.ActionDowngrade {
		t.Fatalf("status: %+v", b)
	}
	// A large but sane jump (a year ahead of now) is accepted.
	res, err = installFile(t, root, pack(t, release{version: "3.0.0", seq: uint64(now.Unix()) + 365*24*3600}), loadPolicy(t, "default"))
	if err != nil || res.Outcome != install.OutcomeInstalled {
		t.Fatalf("sane jump: %v", err)
	}
}
