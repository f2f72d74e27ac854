package install

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// recover brings the root back in line with the state after a crash, under
// the lock. First it compares the state with the release records (see
// reconcile): a state that is missing or older than the records stops
// everything with a *StateBehindError. Then it removes unfinished staging directories and temporary files,
// removes release directories the state does not list (written by an
// install that died before its commit point), and points every current
// link at the state's current release (an install that died after its
// commit point, before the switch). It returns what it did, one line each.
func (l *layout) recover(st *State) ([]string, error) {
	if err := l.ensure(); err != nil {
		return nil, err
	}
	done, pruned, err := l.reconcile(st, false)
	if err != nil {
		return done, err
	}
	if err := l.backfillRecords(st); err != nil {
		return done, err
	}
	ents, err := readDirNames(l.air, ".")
	if err != nil {
		return done, err
	}
	for _, e := range ents {
		n := e.Name()
		p := filepath.Join(l.path, dirAirlock, n)
		switch {
		case strings.HasPrefix(n, stagingPrefix):
			if err := l.air.RemoveAll(n); err != nil {
				return done, err
			}
			done = append(done, "removed the unfinished staging directory "+p)
		case strings.HasPrefix(n, stateTempPrefix):
			if err := l.air.Remove(n); err != nil {
				return done, err
			}
			done = append(done, "removed the unfinished state file "+p)
		}
	}

	ents, err = readDirNames(l.rel, ".")
	if err != nil {
		return done, err
	}
	for _, e := range ents {
		n := e.Name()
		p := filepath.Join(l.path, dirReleases, n)
		if !e.IsDir() {
			return done, &RootError{Path: p, Reason: "is not a directory"}
		}
		b := st.Bundles[n]
		if b == nil {
			if err := l.rel.RemoveAll(n); err != nil {
				return done, err
			}
			done = append(done, "removed "+p+", left by an install that did not complete")
			continue
		}
		nr, err := l.nameDir(n, false)
		if err != nil {
			return done, err
		}
		vents, err := readDirNames(nr, ".")
		if err != nil {
			nr.Close()
			return done, err
		}
		for _, v := range vents {
			if v.Name() == dirRecords {
				continue
			}
			if b.release(v.Name()) != nil {
				if !v.IsDir() {
					nr.Close()
					return done, &RootError{Path: filepath.Join(p, v.Name()), Reason: "is not a directory"}
				}
				continue
			}
			if err := nr.RemoveAll(v.Name()); err != nil {
				nr.Close()
				return done, err
			}
			if pruned[n][v.Name()] {
				done = append(done, "removed "+filepath.Join(p, v.Name())+", left by a prune that did not complete")
			} else {
				done = append(done, "removed "+filepath.Join(p, v.Name())+", left by an install that did not complete")
			}
		}
		nr.Close()
	}

	ents, err = readDirNames(l.cur, ".")
	if err != nil {
		return done, err
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") && strings.Contains(n, linkTempInfix) && e.Type()&fs.ModeSymlink != 0 {
			if err := l.cur.Remove(n); err != nil {
				return done, err
			}
		}
	}
	names := make([]string, 0, len(st.Bundles))
	for n := range st.Bundles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := st.Bundles[n]
		if b.Current == "" || l.linkIs(n, b.Current) {
			continue
		}
		if err := l.switchLink(n, b.Current); err != nil {
			return done, err
		}
		done = append(done, fmt.Sprintf("pointed %s at %s %s, the current release in the state", filepath.Join(l.path, dirCurrent, n), n, b.Current))
	}
	msg, err := l.recoverAudit(st)
	if msg != "" {
		done = append(done, msg)
	}
	return done, err
}
