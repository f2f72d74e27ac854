package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func entry(i int) Entry {
	return Entry{
		Time: time.Date(2026, 12, 1, 10, i, 0, 0, time.UTC), Operation: OpInstall, Result: ResultAccepted, Outcome: "installed",
		Bundle:  &Bundle{Name: "payments", Version: fmt.Sprintf("1.%d.0", i), Sequence: uint64(i + 1), Root: "sha256:" + strings.Repeat("ab", 32)},
		Policy:  &Policy{Path: "policy.yaml", Digest: "sha256:" + strings.Repeat("cd", 32)},
		Signers: []Signer{{Name: "release", KeyID: "sha256:" + strings.Repeat("ef", 32)}},
		Airlock: "test",
	}
}

// writeLog appends n entries to a new log and returns its path and the heads.
func writeLog(t *testing.T, n int) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var heads []string
	for i := range n {
		e, head, err := l.Append(entry(i))
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		heads = append(heads, head)
	}
	return path, heads
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))
}

func TestAppendVerify(t *testing.T) {
	path, heads := writeLog(t, 5)
	rep, err := VerifyFile(path, VerifyOptions{Head: heads[2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Entries) != 5 || rep.Head != heads[4] || rep.Partial != nil {
		t.Fatalf("report: %d entries, head %s (want %s), partial %v", len(rep.Entries), rep.Head, heads[4], rep.Partial)
	}
	if rep.Entries[0].Prev != "" || rep.Entries[3].Prev != heads[2] {
		t.Fatalf("chain: %q, %q", rep.Entries[0].Prev, rep.Entries[3].Prev)
	}
	if rep.Entries[4].Bundle.Version != "1.4.0" {
		t.Fatalf("entry 5 reads back as %+v", rep.Entries[4].Bundle)
	}
}

// TestTamperDetected: every way of changing a written log that the chain
// can see is reported as ErrBroken naming the line.
func TestTamperDetected(t *testing.T) {
	cases := []struct {
		name     string
		change   func(orig, ls [][]byte) [][]byte
		line     int
		headOnly bool // only detectable with the noted head
	}{
		{"edited line", func(orig, ls [][]byte) [][]byte {
			ls[1] = bytes.Replace(ls[1], []byte(`"1.1.0"`), []byte(`"1.9.0"`), 1)
			return ls
		}, 3, false},
		{"edited line, hash recomputed", func(orig, ls [][]byte) [][]byte {
			// An attacker who edits line 2 and fixes line 3's prev must
			// then fix every later line: line 4 breaks.
			ls[1] = bytes.Replace(ls[1], []byte(`"installed"`), []byte(`"switched"`), 1)
			ls[2] = bytes.Replace(ls[2], []byte(LineDigest(orig[1])), []byte(LineDigest(ls[1])), 1)
			return ls
		}, 4, false},
		{"deleted line", func(orig, ls [][]byte) [][]byte { return append(ls[:2:2], ls[3:]...) }, 3, false},
		{"deleted first line", func(orig, ls [][]byte) [][]byte { return ls[1:] }, 1, false},
		{"swapped lines", func(orig, ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls }, 2, false},
		{"unknown field", func(orig, ls [][]byte) [][]byte {
			ls[0] = bytes.Replace(ls[0], []byte(`{"seq"`), []byte(`{"approved":true,"seq"`), 1)
			return ls
		}, 1, false},
		{"duplicate key", func(orig, ls [][]byte) [][]byte {
			ls[1] = bytes.Replace(ls[1], []byte(`"result":"accepted"`), []byte(`"result":"accepted","result":"rejected"`), 1)
			return ls
		}, 2, false},
		{"edited last line", func(orig, ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte(`"accepted"`), []byte(`"rejected"`), 1)
			return ls
		}, 5, true},
		{"deleted last lines", func(orig, ls [][]byte) [][]byte { return ls[:3] }, 3, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, heads := writeLog(t, 5)
			ls := lines(t, path)
			changed := c.change(ls, cloneLines(ls))
			if err := os.WriteFile(path, bytes.Join(changed, nil), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := VerifyFile(path, VerifyOptions{})
			if c.headOnly {
				if err != nil {
					t.Fatalf("without the head: %v", err)
				}
				_, err = VerifyFile(path, VerifyOptions{Head: heads[4]})
			}
			var ce *ChainError
			if !errors.Is(err, ErrBroken) || !errors.As(err, &ce) {
				t.Fatalf("not detected: %v", err)
			}
			if ce.Line != c.line {
				t.Fatalf("reported line %d, want %d: %v", ce.Line, c.line, err)
			}
			t.Log(err)
		})
	}
}

func cloneLines(ls [][]byte) [][]byte {
	out := make([][]byte, len(ls))
	for i, l := range ls {
		out[i] = bytes.Clone(l)
	}
	return out
}

// TestCrashMidAppend cuts the last append at every byte, as a crash during
// the write leaves it: the earlier lines still verify, the partial line is
// reported, and the next append removes it and continues the chain.
func TestCrashMidAppend(t *testing.T) {
	path, heads := writeLog(t, 3)
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	start := len(full) - len(ls[2])
	for cut := start; cut < len(full); cut++ {
		p := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(p, full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyFile(p, VerifyOptions{Head: heads[1]})
		if err != nil {
			t.Fatalf("cut at %d: the earlier lines do not verify: %v", cut, err)
		}
		if len(rep.Entries) != 2 || (cut > start && (rep.Partial == nil || rep.Partial.Bytes != cut-start)) {
			t.Fatalf("cut at %d: %d entries, partial %+v", cut, len(rep.Entries), rep.Partial)
		}
		if (cut-start)%7 != 0 && cut != len(full)-1 {
			continue // appending fsyncs; repairing every 7th cut is enough
		}
		l, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		e, head, err := l.Append(entry(7))
		l.Close()
		if err != nil {
			t.Fatalf("cut at %d: append: %v", cut, err)
		}
		if e.Seq != 3 || e.Prev != heads[1] || (cut > start) != (e.Repaired != "") {
			t.Fatalf("cut at %d: appended seq %d prev %s repaired %q", cut, e.Seq, e.Prev, e.Repaired)
		}
		rep, err = VerifyFile(p, VerifyOptions{Head: head})
		if err != nil || len(rep.Entries) != 3 || rep.Partial != nil {
			t.Fatalf("cut at %d: after the repair: %v, %d entries, partial %+v", cut, err, len(rep.Entries), rep.Partial)
		}
	}
}

// TestKilledWriters kills processes that append as fast as they can, at a
// random moment, several at once: the log always verifies (at most a
// partial last line) and the next append continues the chain.
func TestKilledWriters(t *testing.T) {
	if path := os.Getenv("AIRLOCK_AUDIT_WRITER"); path != "" {
		l, err := Open(path)
		if err != nil {
			os.Exit(2)
		}
		for i := 0; ; i++ {
			if _, _, err := l.Append(entry(i % 50)); err != nil {
				os.Exit(3)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := range 5 {
		var cmds []*exec.Cmd
		for range 3 {
			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriters$")
			cmd.Env = append(os.Environ(), "AIRLOCK_AUDIT_WRITER="+path)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		time.Sleep(time.Duration(50+round*37) * time.Millisecond)
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
		rep, err := VerifyFile(path, VerifyOptions{})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(rep.Entries) == 0 {
			t.Fatalf("round %d: the writers wrote nothing", round)
		}
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.Append(entry(99)); err != nil {
			t.Fatal(err)
		}
		l.Close()
		t.Logf("round %d: %d entries, partial %v", round, len(rep.Entries), rep.Partial)
	}
	if _, err := VerifyFile(path, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestAppendRefusesGarbageTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, err := l.Append(entry(0)); !errors.Is(err, ErrBroken) {
		t.Fatalf("appended after a line that is not an entry: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not json\n" {
		t.Fatalf("the file changed: %q", b)
	}
}

// TestAppendOnce: replaying the append of the last entry logs nothing;
// the same entry after another one is a new line.
func TestAppendOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, headA, err := l.AppendOnce(entry(1))
	if err != nil {
		t.Fatal(err)
	}
	again, headAgain, err := l.AppendOnce(entry(1))
	if err != nil || again.Seq != a.Seq || headAgain != headA {
		t.Fatalf("replayed append: seq %d head %s, %v", again.Seq, headAgain, err)
	}
	l.Append(entry(2))
	if e, _, _ := l.AppendOnce(entry(1)); e.Seq != 3 {
		t.Fatalf("the same entry after another one: seq %d, want 3", e.Seq)
	}
	if rep, err := VerifyFile(path, VerifyOptions{}); err != nil || len(rep.Entries) != 3 {
		t.Fatalf("%v, %+v", err, rep)
	}
}
