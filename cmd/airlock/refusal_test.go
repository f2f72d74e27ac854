package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/airlock-dev/airlock/audit"
)

// runBinary runs this test binary as airlock itself (TestMain), in its own
// process, and returns the exit code, stdout and stderr.
func runBinary(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "AIRLOCK_TEST_RUN_CLI=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run airlock %v: %v", args, err)
	}
	if strings.Contains(errb.String(), "panic:") {
		t.Fatalf("panic in airlock %v:\n%s", args, errb.String())
	}
	return code, out.String(), errb.String()
}

// rootTree describes every file and link under dir but DIR/.airlock/audit.log
// (mode and sha256, link target), to compare an install root byte for byte.
func rootTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case rel == ".airlock/audit.log":
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			tree[rel] = "link " + target
		case d.IsDir():
			tree[rel+"/"] = "dir " + info.Mode().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			tree[rel] = info.Mode().String() + " " + hex.EncodeToString(s[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func sameTree(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: %s: %q, then %q", what, k, v, b[k])
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s: %s appeared: %q", what, k, v)
		}
	}
}

// addedLine checks that the log at path is before plus exactly one line
// and returns that line's entry.
func addedLine(t *testing.T, path string, before []byte) audit.Entry {
	t.Helper()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	added, ok := bytes.CutPrefix(after, before)
	if !ok || bytes.Count(added, []byte("\n")) != 1 || !bytes.HasSuffix(added, []byte("\n")) {
		t.Fatalf("%s: gained %q (earlier lines kept: %v), want exactly one line", path, added, ok)
	}
	var e audit.Entry
	if err := json.Unmarshal(added, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRefusedInstallAuditCLI runs the airlock binary: a replay of an older
// bundle into an install root exits 3, leaves every file of the root and
// state.json byte for byte as they were, and appends exactly one refused
// line to DIR/.airlock/audit.log (and to --audit-log FILE), which `airlock
// audit verify` accepts and `airlock audit show` lists. With the root's
// lock held by another process the append is skipped, and stderr says so.
// A refused rollback is recorded the same way.
func TestRefusedInstallAuditCLI(t *testing.T) {
	t.Parallel()
	f := newInstallFixture(t)
	v1, v2 := f.pack(t, "1.0.0", 100), f.pack(t, "1.1.0", 200)
	root := filepath.Join(t.TempDir(), "root")
	ext := filepath.Join(t.TempDir(), "site-audit.log")
	rootLog := filepath.Join(root, ".airlock", "audit.log")

	if code, _, stderr := runBinary(t, nil, "install", v2, "--root", root, "--policy", f.policy, "-q", "--audit-log", ext); code != exitOK {
		t.Fatalf("install v2: exit %d\n%s", code, stderr)
	}
	tree := rootTree(t, root)
	state, _ := os.ReadFile(filepath.Join(root, ".airlock", "state.json"))
	logBefore, _ := os.ReadFile(rootLog)
	extBefore, _ := os.ReadFile(ext)

	code, out, stderr := runBinary(t, nil, "install", v1, "--root", root, "--policy", f.policy, "--audit-log", ext)
	if code != exitRejected || !strings.Contains(out, "REJECTED") || !strings.Contains(stderr, "lower sequence") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, stderr)
	}
	sameTree(t, "root after the refused replay", tree, rootTree(t, root))
	if st, _ := os.ReadFile(filepath.Join(root, ".airlock", "state.json")); !bytes.Equal(st, state) {
		t.Fatal("state.json changed")
	}
	e := addedLine(t, rootLog, logBefore)
	if e.Operation != audit.OpInstall || e.Result != audit.ResultRefused || e.Class != audit.ClassRejected || !strings.Contains(e.Reason, "lower sequence") ||
		e.Bundle == nil || e.Bundle.Name != "demo" || e.Bundle.Version != "1.0.0" || e.Bundle.Sequence != 100 || e.Bundle.Root == "" || e.Claimed != nil ||
		e.Policy == nil || len(e.Signers) != 2 {
		t.Fatalf("refused line: %+v", e)
	}
	if x := addedLine(t, ext, extBefore); x.Result != audit.ResultRefused || x.Reason != e.Reason || x.Target == "" {
		t.Fatalf("--audit-log line: %+v", x)
	}

	code, out, stderr = runBinary(t, nil, "audit", "verify", "--root", root)
	if code != exitOK || !strings.Contains(out, "2 entries, hash chain intact") || !strings.Contains(out, "install  refused  demo 1.0.0 (seq 100)") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = runBinary(t, nil, "audit", "show", "--root", root)
	if code != exitOK || !strings.Contains(out, "refused") || !strings.Contains(out, "rejected: verification failed (install): demo 1.0.0 (sequence 100; highest accepted 200)") {
		t.Fatalf("audit show: exit %d\n%s", code, out)
	}
	t.Log(out)
	if code, out, _ = runBinary(t, nil, "audit", "verify", ext); code != exitOK || !strings.Contains(out, "2 entries") {
		t.Fatalf("audit verify --audit-log file: exit %d\n%s", code, out)
	}

	// Another process holds the root's lock: the refusal is not waited
	// for and not recorded in the root; stderr says so; --audit-log
	// still gets it.
	lock, err := os.OpenFile(filepath.Join(root, ".airlock", "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	logBefore, _ = os.ReadFile(rootLog)
	extBefore, _ = os.ReadFile(ext)
	code, _, stderr = runBinary(t, nil, "install", v1, "--root", root, "--policy", f.policy, "-q", "--audit-log", ext)
	lock.Close()
	if code != exitError || !strings.Contains(stderr, "the refusal is not recorded in "+rootLog) || !strings.Contains(stderr, "is held by") {
		t.Fatalf("refusal while locked: exit %d\n%s", code, stderr)
	}
	if after, _ := os.ReadFile(rootLog); !bytes.Equal(after, logBefore) {
		t.Fatal("the root's audit log changed while another process held the lock")
	}
	if x := addedLine(t, ext, extBefore); x.Result != audit.ResultRefused || x.Class != audit.ClassCouldNotRun {
		t.Fatalf("--audit-log line while locked: %+v", x)
	}
	t.Log(stderr)

	// A refused rollback (nothing older installed): exit 1, one line.
	logBefore, _ = os.ReadFile(rootLog)
	if code, _, stderr := runBinary(t, nil, "rollback", "demo", "--root", root); code != exitError {
		t.Fatalf("rollback: exit %d\n%s", code, stderr)
	}
	if e := addedLine(t, rootLog, logBefore); e.Operation != audit.OpRollback || e.Result != audit.ResultRefused || e.Class != audit.ClassCouldNotRun {
		t.Fatalf("rollback line: %+v", e)
	}
	sameTree(t, "root after the refused rollback", tree, rootTree(t, root))

	// A bundle file that cannot be opened: refused before install ran
	// (exit 1), recorded with the path given.
	logBefore, _ = os.ReadFile(rootLog)
	missing := filepath.Join(t.TempDir(), "missing.airlock")
	if code, _, stderr := runBinary(t, nil, "install", missing, "--root", root, "--policy", f.policy); code != exitError {
		t.Fatalf("missing bundle: exit %d\n%s", code, stderr)
	}
	if e := addedLine(t, rootLog, logBefore); e.Result != audit.ResultRefused || e.Class != audit.ClassCouldNotRun || e.Bundle != nil || e.Claimed == nil || e.Claimed.Path != missing {
		t.Fatalf("missing bundle line: %+v", e)
	}
	sameTree(t, "root after the missing bundle", tree, rootTree(t, root))
	if code, out, _ := runBinary(t, nil, "audit", "verify", "--root", root); code != exitOK || !strings.Contains(out, "4 entries") {
		t.Fatalf("audit verify at the end: exit %d\n%s", code, out)
	}

	// A usage error is not recorded.
	logBefore, _ = os.ReadFile(rootLog)
	if code, _, _ := runBinary(t, nil, "install", v1, "--root", root, "--policy", f.policy, "--retry-window", "0s"); code != exitUsage {
		t.Fatalf("usage error: exit %d", code)
	}
	if after, _ := os.ReadFile(rootLog); !bytes.Equal(after, logBefore) {
		t.Fatal("a usage error was recorded")
	}
}
