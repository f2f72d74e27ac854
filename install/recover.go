package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// recover brings the root back in line with the state after a crash, under
// the lock. First it compares the state with the release records (see
// reconcile): a state that is missing or older than the records stops
// everything with a *StateBehindError, and a release directory nothing
// accounts for stops it with a *StateError (see leftovers); both before
// anything changes. Then it removes unfinished staging directories and
// airlock's own temporary files (see removeTemps), release directories the
// state does not list (written by an install that died before its commit
// point, with its pending record, or by a prune that died after it), and
// points every current link at the state's current release (an install
// that died after its commit point, before the switch). It returns what it
// did, one line each.
func (l *layout) recover(st *State) ([]string, error) {
	if err := l.ensure(); err != nil {
		return nil, err
	}
	rc, err := l.reconcile(st, false)
	if err != nil {
		return nil, err
	}
	left, err := l.leftovers(st, rc, l.stateDigest == "")
	if err != nil {
		return nil, err
	}
	if err := l.backfillRecords(st); err != nil {
		return nil, err
	}
	done, err := l.removeTemps()
	if err != nil {
		return done, err
	}
	more, err := l.removeLeftovers(left)
	done = append(done, more...)
	if err != nil {
		return done, err
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

// leftover is a release directory (or only its pending record) recovery
// removes.
type leftover struct {
	name, version string
	dir           bool   // remove DIR/releases/NAME/VERSION
	record        bool   // remove its pending record (after the directory)
	why           string // "an install" or "a prune"
}

// leftovers decides, changing nothing, which release directories the
// state does not list are left by an interrupted install or prune. It
// refuses with a *StateError the directory DIR/current/NAME points at,
// and, when strict (the state is missing or being rebuilt, so it cannot
// vouch that a directory is not a release), a directory no record
// accounts for.
func (l *layout) leftovers(st *State, rc *reconciled, strict bool) ([]leftover, error) {
	var out []leftover
	ents, err := readDirNames(l.rel, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		n := e.Name()
		p := filepath.Join(l.path, dirReleases, n)
		if !e.IsDir() {
			return nil, &RootError{Path: p, Reason: "is not a directory"}
		}
		b := st.Bundles[n]
		nr, err := l.nameDir(n, false)
		if err != nil {
			return nil, err
		}
		vents, err := readDirNames(nr, ".")
		nr.Close()
		if err != nil {
			return nil, err
		}
		linked := ""
		if validName(n) {
			linked = l.linkedVersion(n)
		}
		seen := map[string]bool{}
		for _, ve := range vents {
			v := ve.Name()
			if v == dirRecords {
				continue
			}
			seen[v] = true
			vp := filepath.Join(p, v)
			if b != nil && b.release(v) != nil {
				if !ve.IsDir() {
					return nil, &RootError{Path: vp, Reason: "is not a directory"}
				}
				continue
			}
			if v == linked {
				return nil, &StateError{Path: StatePath(l.path), Root: l.path,
					Reason: fmt.Sprintf("does not list %s, which %s points at", vp, CurrentLink(l.path, n)),
					Fix:    fmt.Sprintf("restore %s from a backup that lists it; without one, move that directory out of %s (%s then points at nothing until the next install) and install its bundle again", fileState, p, CurrentLink(l.path, n))}
			}
			rec := rc.records[n][v]
			switch {
			case rc.uncommitted[n][v]:
				out = append(out, leftover{name: n, version: v, dir: true, record: true, why: "an install"})
			case rc.pruned[n][v]:
				out = append(out, leftover{name: n, version: v, dir: true, why: "a prune"})
			case rec != nil:
				// reconcile accounts for every record; a record the state
				// does not list has been pruned or is behind.
				return nil, &StateBehindError{State: StatePath(l.path), Record: filepath.Join(p, recordName(v)), Name: n, Version: v, Sequence: rec.Release.Sequence, Highest: highestOf(b)}
			case strict:
				return nil, &StateError{Path: StatePath(l.path), Root: l.path,
					Reason: fmt.Sprintf("is missing or being rebuilt, and no release record accounts for %s", vp),
					Fix:    fmt.Sprintf("restore %s from a backup that lists it; or, if that directory is not needed, move it out of %s (airlock cannot tell what installed it) and run the command again", fileState, p)}
			default:
				out = append(out, leftover{name: n, version: v, dir: true, why: "an install"})
			}
		}
		for v := range rc.uncommitted[n] {
			if !seen[v] {
				out = append(out, leftover{name: n, version: v, record: true, why: "an install"})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].version < out[j].version
	})
	return out, nil
}

func highestOf(b *BundleState) uint64 {
	if b == nil {
		return 0
	}
	return b.HighestSequence
}

// removeLeftovers removes what leftovers found: each directory, then its
// pending record.
func (l *layout) removeLeftovers(left []leftover) ([]string, error) {
	var done []string
	for _, lo := range left {
		nr, err := l.nameDir(lo.name, false)
		if err != nil {
			return done, err
		}
		p := ReleaseDir(l.path, lo.name, lo.version)
		if lo.dir {
			if err := nr.RemoveAll(lo.version); err != nil {
				nr.Close()
				return done, err
			}
		}
		if lo.record {
			if err := nr.Remove(dirRecords + "/" + lo.version + ".json"); err != nil && !errorsIsNotExist(err) {
				nr.Close()
				return done, err
			}
			syncDir(nr, dirRecords)
		}
		nr.Close()
		switch {
		case lo.dir && lo.record:
			done = append(done, fmt.Sprintf("removed %s and its pending release record, left by %s that did not complete", p, lo.why))
		case lo.dir:
			done = append(done, fmt.Sprintf("removed %s, left by %s that did not complete", p, lo.why))
		default:
			done = append(done, fmt.Sprintf("removed the pending release record of %s %s, left by %s that did not complete", lo.name, lo.version, lo.why))
		}
	}
	return done, nil
}

// removeTemps removes the unfinished staging directories and temporary
// files airlock's atomic writes leave when killed, wherever it writes them
// in the root: DIR/.airlock (state), DIR/releases/NAME/.records (release
// records) and DIR/current (links). It removes only names airlock gives
// (a known prefix and 16 hex digits) of the type it creates; anything else
// stays.
func (l *layout) removeTemps() ([]string, error) {
	var done []string
	ents, err := readDirNames(l.air, ".")
	if err != nil {
		return done, err
	}
	for _, e := range ents {
		n := e.Name()
		p := filepath.Join(l.path, dirAirlock, n)
		switch {
		case isStagingName(n):
			if err := l.air.RemoveAll(n); err != nil {
				return done, err
			}
			done = append(done, "removed the unfinished staging directory "+p)
		case isTempName(n, stateTempPrefix) && e.Type().IsRegular():
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
		if !e.IsDir() || !validName(e.Name()) {
			continue
		}
		nr, err := l.nameDir(e.Name(), false)
		if err != nil {
			return done, err
		}
		more, err := removeRecordTemps(nr, filepath.Join(l.path, dirReleases, e.Name()))
		nr.Close()
		done = append(done, more...)
		if err != nil {
			return done, err
		}
	}

	ents, err = readDirNames(l.cur, ".")
	if err != nil {
		return done, err
	}
	for _, e := range ents {
		n := e.Name()
		if isLinkTempName(n) && e.Type()&fs.ModeSymlink != 0 {
			if err := l.cur.Remove(n); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// removeRecordTemps removes the temporary files of record writes in
// nameDir/.records.
func removeRecordTemps(nr *os.Root, nameDir string) ([]string, error) {
	rr, err := openOwnedDir(nr, nameDir, dirRecords, false)
	if errorsIsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	ents, err := readDirNames(rr, ".")
	if err != nil {
		return nil, err
	}
	var done []string
	for _, e := range ents {
		n := e.Name()
		if (isTempName(n, recordTempPrefix) || isTempName(n, stateTempPrefix)) && e.Type().IsRegular() {
			if err := rr.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return done, err
			}
			done = append(done, "removed the unfinished release record file "+filepath.Join(nameDir, dirRecords, n))
		}
	}
	return done, nil
}
