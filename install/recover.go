package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// recover brings the root back in line with the state after a crash, under
// the lock. First it compares the state with the release records (see
// reconcile): a state that is missing or older than the records stops
// everything with a *StateBehindError, and, when the state is missing, a
// release directory nothing accounts for stops it with a *StateError (see
// leftovers); both before anything changes. Then it removes unfinished
// staging directories and airlock's own temporary files (see removeTemps),
// keeps ambiguous pending records as aborted ones and raises the highest
// accepted sequence to theirs (see settle), removes the release directories
// a pending, aborted or pruned record proves airlock left (an install that
// died before its commit point, a prune that died after it), and points
// every current link at the state's current release (an install that died
// after its commit point, before the switch). It returns what it did, one
// line each.
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
	more, raised, err := l.settle(st, rc, time.Now())
	done = append(done, more...)
	if err != nil {
		return done, err
	}
	more, err = l.removeLeftovers(left)
	done = append(done, more...)
	if err != nil {
		return done, err
	}
	if raised {
		if err := l.writeState(st); err != nil {
			return done, err
		}
	}
	for _, n := range sortedNames(st) {
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

// settle keeps each ambiguous pending record reconcile found (see
// records.go) as an aborted record, and raises in st the highest accepted
// sequence of every name to that of its aborted records the state does not
// list; it reports whether st changed (the caller writes it, after the
// directories of those releases are gone). A crash at any step leaves what
// the next run finishes: an aborted record stays aborted, and its
// directory and sequence are settled again.
func (l *layout) settle(st *State, rc *reconciled, now time.Time) ([]string, bool, error) {
	var done []string
	t := now.UTC()
	for _, name := range sortedKeys(rc.aborting) {
		for _, v := range sortedKeys(rc.aborting[name]) {
			rec := rc.records[name][v]
			ab := &releaseRecord{Release: rec.Release, Aborted: &t}
			if err := l.writeRecord(name, ab); err != nil {
				return done, false, err
			}
			rc.records[name][v] = ab
			mark(rc.aborted, name, v)
			done = append(done, fmt.Sprintf("kept the release record of %s %s (sequence %d) as an aborted install's: the install stopped before its commit point, or it committed and %s was then restored from a backup taken just before it, which airlock cannot tell apart; its sequence still counts, and only the same bundle can be installed again at it", name, v, rec.Release.Sequence, StatePath(l.path)))
		}
	}
	raised := false
	for _, name := range sortedKeys(rc.aborted) {
		for _, v := range sortedKeys(rc.aborted[name]) {
			rec := rc.records[name][v]
			b := st.Bundles[name]
			if b == nil {
				b = &BundleState{Releases: []Release{}, History: []Event{}}
				st.Bundles[name] = b
			}
			if rec.Release.Sequence > b.HighestSequence {
				b.HighestSequence = rec.Release.Sequence
				raised = true
				done = append(done, fmt.Sprintf("raised the highest accepted sequence of %s to %d from the aborted record of %s", name, b.HighestSequence, v))
			}
		}
	}
	return done, raised, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// leftover is a release directory recovery removes.
type leftover struct {
	name, version string
	why           string // "an install" or "a prune"
}

// leftovers decides, changing nothing, which release directories the
// state does not list are left by an interrupted install or prune: only a
// directory whose name is a valid bundle name and version and whose
// pending, aborted or pruned record proves airlock wrote it. Anything else
// under DIR/releases (files, other names, directories no record accounts
// for) is left alone. It refuses with a *StateError the directory
// DIR/current/NAME points at, and, when strict (the state is missing or
// being rebuilt, so it cannot vouch that a directory is not a release of
// an airlock older than the records), a release directory no record
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
		if !e.IsDir() || !validName(n) {
			continue // not airlock's
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
		linked := l.linkedVersion(n)
		for _, ve := range vents {
			v := ve.Name()
			vp := filepath.Join(p, v)
			if v == dirRecords || !validVersion(v) {
				continue
			}
			if b != nil && b.release(v) != nil {
				if !ve.IsDir() {
					return nil, &RootError{Path: vp, Reason: "is not a directory"}
				}
				continue
			}
			if !ve.IsDir() {
				continue // not airlock's
			}
			if v == linked {
				return nil, &StateError{Path: StatePath(l.path), Root: l.path,
					Reason: fmt.Sprintf("does not list %s, which %s points at", vp, CurrentLink(l.path, n)),
					Fix:    fmt.Sprintf("restore %s from a backup that lists it; without one, move that directory out of %s (%s then points at nothing until the next install) and install its bundle again", fileState, p, CurrentLink(l.path, n))}
			}
			rec := rc.records[n][v]
			switch {
			case rc.aborting[n][v], rc.aborted[n][v]:
				out = append(out, leftover{name: n, version: v, why: "an install"})
			case rc.pruned[n][v]:
				out = append(out, leftover{name: n, version: v, why: "a prune"})
			case rec != nil:
				// reconcile accounts for every record; a record the state
				// does not list has been pruned or is behind.
				return nil, &StateBehindError{State: StatePath(l.path), Record: filepath.Join(p, recordName(v)), Name: n, Version: v, Sequence: rec.Release.Sequence, Highest: highestOf(b)}
			case strict:
				return nil, &StateError{Path: StatePath(l.path), Root: l.path,
					Reason: fmt.Sprintf("is missing or being rebuilt, and no release record accounts for %s", vp),
					Fix:    fmt.Sprintf("restore %s from a backup that lists it; or, if that directory is not needed, move it out of %s (airlock cannot tell what installed it) and run the command again", fileState, p)}
			}
			// Otherwise not airlock's: every release directory airlock
			// creates has a record first. Left alone.
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

// removeLeftovers removes the directories leftovers found (their records
// stay: pruned or aborted, their sequences count).
func (l *layout) removeLeftovers(left []leftover) ([]string, error) {
	var done []string
	for _, lo := range left {
		nr, err := l.nameDir(lo.name, false)
		if err != nil {
			return done, err
		}
		err = nr.RemoveAll(lo.version)
		if err == nil {
			err = syncDir(nr, ".")
		}
		nr.Close()
		if err != nil {
			return done, err
		}
		done = append(done, fmt.Sprintf("removed %s, left by %s that did not complete", ReleaseDir(l.path, lo.name, lo.version), lo.why))
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
		case isStagingName(n) && e.IsDir():
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
