package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/internal/safepath"
)

// Kinds of Finding.
const (
	DriftModified = "modified" // content differs from the recorded digest or size
	DriftMissing  = "missing"  // a recorded file or release directory is gone
	DriftExtra    = "extra"    // something in a release directory airlock did not install
	DriftMode     = "mode"     // permission bits differ
	DriftType     = "type"     // a recorded file is now a link, a directory or a device
	DriftLink     = "link"     // DIR/current/NAME does not point at the current release
)

// CheckReport is what Check found.
type CheckReport struct {
	Root     string         `json:"root"`
	Releases []ReleaseCheck `json:"releases"`
	// Findings counts all findings; 0 means no drift.
	Findings int   `json:"findings"`
	Files    int   `json:"files"` // files checked
	Bytes    int64 `json:"bytes"` // bytes hashed
}

// ReleaseCheck is the outcome for one installed release.
type ReleaseCheck struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Current  bool      `json:"current"`
	Dir      string    `json:"dir"`
	Findings []Finding `json:"findings"`
}

// Finding is one difference between the state and the disk.
type Finding struct {
	Path     string `json:"path"` // relative to the release directory; the link's path for DriftLink
	Kind     string `json:"kind"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
}

// Check takes the install root's lock shared (a *LockedError when an
// install, rollback, prune or repair holds it), then re-hashes every
// installed file against the state and reports
// drift: modified, missing or extra files, wrong modes or types, and current
// links that point elsewhere. It changes nothing and follows no link. It
// returns the report in every case once the state was read; the error is a
// *DriftError when something drifted.
func Check(ctx context.Context, root string) (*CheckReport, error) {
	if err := precheck(root); err != nil {
		return nil, err
	}
	if _, err := statDir(root); err != nil {
		return nil, err
	}
	rep := &CheckReport{Root: root, Releases: []ReleaseCheck{}}
	l, err := openLayout(root, false)
	if errorsIsNotExist(err) {
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	defer l.close()
	// Shared with other readers, never overlapping a writer: a prune or a
	// rollback in progress is not drift.
	if err := l.acquireShared(); err != nil {
		return nil, err
	}
	st, err := l.readState()
	if err != nil {
		return nil, err
	}
	// A state file deleted or restored from an older copy would hide
	// releases from the check: say so instead (nothing is written).
	if _, err := l.reconcile(st, false); err != nil {
		return nil, err
	}
	buf := make([]byte, copyBufferSize)
	drifted := 0
	for _, name := range sortedNames(st) {
		b := st.Bundles[name]
		for _, r := range b.Releases {
			rc := ReleaseCheck{Name: name, Version: r.Version, Current: r.Version == b.Current, Dir: ReleaseDir(root, name, r.Version), Findings: []Finding{}}
			if rc.Current && !l.linkIs(name, r.Version) {
				actual := "missing or not a link"
				if l.cur != nil {
					if t, lerr := l.cur.Readlink(name); lerr == nil {
						actual = t
					}
				}
				rc.Findings = append(rc.Findings, Finding{Path: CurrentLink(root, name), Kind: DriftLink, Expected: linkTarget(name, r.Version), Actual: actual})
			}
			if err := l.checkRelease(ctx, name, r, &rc, rep, buf); err != nil {
				return rep, err
			}
			if len(rc.Findings) > 0 {
				drifted++
				rep.Findings += len(rc.Findings)
			}
			rep.Releases = append(rep.Releases, rc)
		}
	}
	if rep.Findings > 0 {
		return rep, &DriftError{Findings: rep.Findings, Releases: drifted}
	}
	return rep, nil
}

func (l *layout) checkRelease(ctx context.Context, name string, r Release, rc *ReleaseCheck, rep *CheckReport, buf []byte) error {
	missing := func() {
		rc.Findings = append(rc.Findings, Finding{Path: ".", Kind: DriftMissing, Expected: "release directory", Actual: "missing"})
	}
	nr, err := l.nameDir(name, false)
	if errorsIsNotExist(err) {
		missing()
		return nil
	}
	if err != nil {
		return err
	}
	defer nr.Close()
	vr, err := openOwnedDir(nr, filepath.Join(l.path, dirReleases, name), r.Version, false)
	if errorsIsNotExist(err) {
		missing()
		return nil
	}
	if err != nil {
		return err
	}
	defer vr.Close()
	want := make(map[string]bool, len(r.Files))
	dirs := map[string]bool{}
	for _, f := range r.Files {
		want[f.Target] = true
		for d := parentDir(f.Target); d != ""; d = parentDir(d) {
			dirs[d] = true
		}
	}
	for _, f := range r.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep.Files++
		fds, err := checkFile(vr, f, buf, &rep.Bytes)
		if err != nil {
			return fmt.Errorf("check %s: %w", filepath.Join(rc.Dir, f.Target), err)
		}
		rc.Findings = append(rc.Findings, fds...)
	}
	var extra []Finding
	err = fs.WalkDir(vr.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." || want[p] {
			return nil
		}
		if d.IsDir() && dirs[p] {
			return nil
		}
		extra = append(extra, Finding{Path: p, Kind: DriftExtra, Actual: safepath.Kind(d.Type())})
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check %s: %w", rc.Dir, err)
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Path < extra[j].Path })
	rc.Findings = append(rc.Findings, extra...)
	return nil
}

// checkFile compares one installed file with its record; no findings means
// it matches. Every directory on the way is checked not to be a link first.
func checkFile(vr *os.Root, f File, buf []byte, hashed *int64) ([]Finding, error) {
	one := func(fd Finding) ([]Finding, error) { return []Finding{fd}, nil }
	var parents []string
	for d := parentDir(f.Target); d != ""; d = parentDir(d) {
		parents = append(parents, d)
	}
	for i := len(parents) - 1; i >= 0; i-- {
		p := parents[i]
		fi, err := vr.Lstat(p)
		if errorsIsNotExist(err) {
			return one(Finding{Path: f.Target, Kind: DriftMissing, Expected: f.Digest})
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return one(Finding{Path: p, Kind: DriftType, Expected: "directory", Actual: safepath.Kind(fi.Mode().Type())})
		}
	}
	fi, err := vr.Lstat(f.Target)
	if errorsIsNotExist(err) {
		return one(Finding{Path: f.Target, Kind: DriftMissing, Expected: f.Digest})
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return one(Finding{Path: f.Target, Kind: DriftType, Expected: "regular file", Actual: safepath.Kind(fi.Mode().Type())})
	}
	var out []Finding
	wantMode, _ := parseMode(f.Mode)
	if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != wantMode {
		out = append(out, Finding{Path: f.Target, Kind: DriftMode, Expected: f.Mode, Actual: fmt.Sprintf("%04o", uint32(got.Perm())) + specialBits(got)})
	}
	in, err := vr.Open(f.Target)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil || !os.SameFile(fi, st) {
		return one(Finding{Path: f.Target, Kind: DriftType, Expected: "regular file", Actual: "changed while checking"})
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.LimitReader(in, f.Size+1), buf)
	*hashed += n
	if err != nil {
		return nil, err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != f.Digest || n != f.Size {
		actual := got
		if n > f.Size {
			actual = "more than the recorded size"
		}
		out = append(out, Finding{Path: f.Target, Kind: DriftModified, Expected: fmt.Sprintf("%s (%d bytes)", f.Digest, f.Size), Actual: fmt.Sprintf("%s (%d bytes read)", actual, n)})
	}
	return out, nil
}

func specialBits(m fs.FileMode) string {
	var s []string
	if m&fs.ModeSetuid != 0 {
		s = append(s, "setuid")
	}
	if m&fs.ModeSetgid != 0 {
		s = append(s, "setgid")
	}
	if m&fs.ModeSticky != 0 {
		s = append(s, "sticky")
	}
	if len(s) == 0 {
		return ""
	}
	return " +" + strings.Join(s, "+")
}
