package install

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Release records: replay protection that survives losing state.json.
//
// Records are never behind the committed state, and every release
// directory airlock creates is backed by one. Before the staging directory
// becomes DIR/releases/NAME/VERSION, install writes
// DIR/releases/NAME/.records/VERSION.json, fsynced: the release as the
// state will record it and the signed DSSE envelope it was installed from,
// marked pending with the digest of the state file the install started
// from. Right after the commit point (the state write) it rewrites the
// record without the mark (and if it cannot, the next locked run does,
// from the state).
//
// A pending record whose release the state does not list, while the state
// file is byte for byte the one the install started from and
// DIR/current/NAME does not point at the release, is ambiguous: the install
// stopped before its commit point, or it committed and the state was then
// restored from a backup taken before it. No test on the files tells these
// apart, so recovery takes the safe side for the sequence (as it does for
// a pending record whose release directory is missing: the install was
// killed before it renamed its staging directory into place): it keeps the
// record as an aborted install's (a tombstone, marked aborted), raises the
// highest accepted sequence of NAME to the record's, and removes the
// release directory. The identical bundle (same name, version, sequence and
// root) may be installed again; any other bundle is judged against the
// raised sequence, and a different bundle reusing the tombstone's version
// or sequence is a replay. In every other case (the state file was deleted,
// replaced or restored from an older or newer backup) a pending record
// counts like any record.
//
// Prune marks the record pruned before it drops the release from the
// state and keeps it, so the highest accepted sequence can always be
// rebuilt from the records. A record whose release the state does not know
// makes every command that changes the root refuse, until Repair merges
// the records back into the state; the highest accepted sequence is never
// lowered. Recovery removes a directory under DIR/releases only when its
// name is a valid bundle name and version and a pending, aborted or pruned
// record proves airlock wrote it (never the one DIR/current/NAME points
// at); anything else there is left alone.
const (
	dirRecords          = ".records"
	RecordSchemaVersion = 1
	maxRecordSize       = 16 << 20
)

// ErrStateBehind reports a state file that is missing or older than the
// release records (see Repair).
var ErrStateBehind = errors.New("install state is behind the release records")

// releaseRecord is DIR/releases/NAME/.records/VERSION.json.
type releaseRecord struct {
	SchemaVersion int    `json:"schemaVersion"`
	Name          string `json:"name"`
	// Release is the release as the state recorded it when it was installed.
	Release Release `json:"release"`
	// Pruned is when prune removed the release; the record stays so that
	// its sequence still counts.
	Pruned *time.Time `json:"pruned,omitempty"`
	// Pending is set by an install before its commit point: the sha256
	// digest of DIR/.airlock/state.json as the install read it under the
	// lock. The install clears it once the state lists the release.
	Pending string `json:"pending,omitempty"`
	// Aborted is when recovery removed the release of an install it could
	// not prove committed (see above); the record stays as a tombstone
	// whose sequence counts.
	Aborted *time.Time `json:"aborted,omitempty"`
}

// StateBehindError names the record the state does not account for.
type StateBehindError struct {
	State   string // DIR/.airlock/state.json
	Record  string // the record file
	Name    string
	Version string
	// Sequence is the record's; Highest the state's highest for Name.
	Sequence, Highest uint64
}

func (e *StateBehindError) Error() string {
	return fmt.Sprintf("install state %s is missing or older than the release records: %s records %s %s (sequence %d) but the state's highest accepted sequence for %s is %d; nothing was changed. Rebuild the state from the records before installing (the highest accepted sequence is never reset)",
		e.State, e.Record, e.Name, e.Version, e.Sequence, e.Name, e.Highest)
}

func (e *StateBehindError) Unwrap() []error { return []error{ErrStateBehind, ErrState} }

func recordName(version string) string { return dirRecords + "/" + version + ".json" }

// readRecords returns the records under DIR/releases/NAME, by version.
func (l *layout) readRecords(name string) (map[string]*releaseRecord, error) {
	out := map[string]*releaseRecord{}
	nr, err := l.nameDir(name, false)
	if errorsIsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer nr.Close()
	base := filepath.Join(l.path, dirReleases, name, dirRecords)
	rr, err := openOwnedDir(nr, filepath.Join(l.path, dirReleases, name), dirRecords, false)
	if errorsIsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	ents, err := readDirNames(rr, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		n := e.Name()
		p := filepath.Join(base, n)
		if isTempName(n, recordTempPrefix) || isTempName(n, stateTempPrefix) {
			continue // an unfinished write; recover removes it
		}
		version, ok := strings.CutSuffix(n, ".json")
		if !ok || !validVersion(version) || !e.Type().IsRegular() {
			return nil, &RootError{Path: p, Reason: "is not a release record airlock wrote"}
		}
		rec, err := readRecord(rr, n, p, l.path)
		if err != nil {
			return nil, err
		}
		if rec.Name != name || rec.Release.Version != version {
			return nil, &StateError{Path: p, Root: l.path, Reason: fmt.Sprintf("names %s %s, not %s %s", rec.Name, rec.Release.Version, name, version), Fix: recordFix(l.path)}
		}
		out[version] = rec
	}
	return out, nil
}

// recordFix is what to do about a release record that cannot be used.
func recordFix(root string) string {
	return fmt.Sprintf("restore it from a backup. Do not remove it, the other records or %s: the records hold the rollback protection that survives losing the state", root)
}

func readRecord(r *os.Root, name, p, root string) (*releaseRecord, error) {
	bad := func(reason string) error {
		return &StateError{Path: p, Root: root, Reason: reason, Fix: recordFix(root)}
	}
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxRecordSize {
		return nil, bad(fmt.Sprintf("is larger than %d bytes", maxRecordSize))
	}
	var rec releaseRecord
	if err := strictjson.Unmarshal(raw, &rec); err != nil {
		return nil, bad("is corrupted: " + err.Error())
	}
	r0 := rec.Release
	switch {
	case rec.SchemaVersion != RecordSchemaVersion:
		return nil, bad(fmt.Sprintf("has schemaVersion %d (this airlock reads %d)", rec.SchemaVersion, RecordSchemaVersion))
	case r0.Sequence == 0 || !validVersion(r0.Version) || !validName(rec.Name):
		return nil, bad("has no valid name, version or sequence")
	}
	if err := checkFiles(r0.Files); err != nil {
		return nil, bad("is inconsistent: " + err.Error())
	}
	if len(r0.Envelope) > 0 {
		if err := checkEnvelope(rec.Name, r0); err != nil {
			return nil, bad(err.Error())
		}
	}
	if rec.Pending != "" && (rec.Pruned != nil || rec.Aborted != nil || !checked.ValidDigest(rec.Pending)) {
		return nil, bad("has an invalid pending mark")
	}
	if rec.Aborted != nil && rec.Pruned != nil {
		return nil, bad("is marked both pruned and aborted")
	}
	return &rec, nil
}

// checkEnvelope requires the recorded statement to name the recorded
// release: name, version, sequence and root.
func checkEnvelope(name string, r Release) error {
	env, err := bundle.ParseEnvelope(r.Envelope)
	if err != nil {
		return err
	}
	payload, err := base64.StdEncoding.Strict().DecodeString(env.Payload)
	if err != nil {
		return fmt.Errorf("statement: %w", err)
	}
	var st bundle.Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return fmt.Errorf("statement: %w", err)
	}
	p := st.Predicate
	if p.Name != name || p.Version != r.Version || p.Sequence != r.Sequence || len(st.Subject) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != r.Root {
		return fmt.Errorf("its statement (%s %s, sequence %d) is not the recorded release", p.Name, p.Version, p.Sequence)
	}
	return nil
}

// writeRecord writes the record of release r of name atomically.
func (l *layout) writeRecord(name string, rec *releaseRecord) error {
	nr, err := l.nameDir(name, true)
	if err != nil {
		return err
	}
	defer nr.Close()
	if err := nr.Mkdir(dirRecords, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	rr, err := openOwnedDir(nr, filepath.Join(l.path, dirReleases, name), dirRecords, false)
	if err != nil {
		return err
	}
	defer rr.Close()
	rec.SchemaVersion, rec.Name = RecordSchemaVersion, name
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	target := rec.Release.Version + ".json"
	tmp := recordTempPrefix + randomSuffix()
	err = writeSynced(rr, tmp, os.O_EXCL, raw)
	if err == nil {
		err = rr.Rename(tmp, target)
	}
	if err != nil {
		rr.Remove(tmp)
		return fmt.Errorf("write release record %s: %w", filepath.Join(l.path, dirReleases, name, recordName(rec.Release.Version)), err)
	}
	return syncDir(rr, ".")
}

// reconciled is what reconcile learned from the release records.
type reconciled struct {
	done []string
	// records are the records of every name with a directory under
	// DIR/releases, by name and version.
	records map[string]map[string]*releaseRecord
	// pruned: per name, the versions whose records say a prune removed
	// them (their directories may go).
	pruned map[string]map[string]bool
	// aborting: per name, the versions whose pending records are ambiguous
	// (see the package comment above): settle keeps each as an aborted
	// record and its directory goes.
	aborting map[string]map[string]bool
	// aborted: per name, the versions whose records are tombstones of
	// aborted installs the state does not list (their directories may go).
	aborted map[string]map[string]bool
	// changed is true when repair changed the state (the caller writes it).
	changed bool
}

func mark(m map[string]map[string]bool, name, version string) {
	if m[name] == nil {
		m[name] = map[string]bool{}
	}
	m[name][version] = true
}

// linkedVersion returns the version DIR/current/NAME points at, "" when it
// is missing or points anywhere else.
func (l *layout) linkedVersion(name string) string {
	if l.cur == nil {
		return ""
	}
	t, err := l.cur.Readlink(name)
	if err != nil {
		return ""
	}
	v, ok := strings.CutPrefix(t, "../"+dirReleases+"/"+name+"/")
	if !ok || !validVersion(v) {
		return ""
	}
	return v
}

// reconcile compares the state with the release records of every name
// that has a directory under DIR/releases; it writes nothing. A record the
// state does not account for (a higher sequence than the state's highest,
// or an unpruned release the state does not list while its directory
// exists) means the state is missing or older: without repair that is a
// *StateBehindError; with repair the records are merged into st (releases
// whose directory exists are listed again, the highest sequence raised,
// the current release taken from DIR/current/NAME) and rc.changed is set.
// A pending record counts like any other, except when it is ambiguous, and
// an aborted record only raises the sequence (see the package comment
// above and settle).
func (l *layout) reconcile(st *State, repair bool) (*reconciled, error) {
	rc := &reconciled{records: map[string]map[string]*releaseRecord{}, pruned: map[string]map[string]bool{}, aborting: map[string]map[string]bool{}, aborted: map[string]map[string]bool{}}
	if l.rel == nil {
		return rc, nil
	}
	ents, err := readDirNames(l.rel, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !validName(name) {
			continue // recover reports what does not belong
		}
		recs, err := l.readRecords(name)
		if err != nil {
			return nil, err
		}
		rc.records[name] = recs
		b := st.Bundles[name]
		var highest uint64
		if b != nil {
			highest = b.HighestSequence
		}
		linked := l.linkedVersion(name)
		versions := make([]string, 0, len(recs))
		for v := range recs {
			versions = append(versions, v)
		}
		sort.Strings(versions)
		merged := false
		for _, v := range versions {
			rec := recs[v]
			listed := b != nil && b.release(v) != nil
			dirExists := false
			if nr, err := l.nameDir(name, false); err == nil {
				_, serr := nr.Lstat(v)
				dirExists = serr == nil
				nr.Close()
			}
			if !listed && rec.Pending != "" && linked != v && (rec.Pending == l.stateDigest || !dirExists) {
				// The state is the very file the install started from (it
				// stopped before its commit point, or the state was
				// restored from a backup taken just before it), or the
				// install never got its directory in place: settle keeps
				// the record as an aborted one.
				mark(rc.aborting, name, v)
				continue
			}
			if !listed && rec.Aborted != nil {
				// settle raises the highest sequence to the tombstone's.
				mark(rc.aborted, name, v)
				continue
			}
			if listed || rec.Pruned != nil && rec.Release.Sequence <= highest {
				if rec.Pruned != nil && !listed {
					mark(rc.pruned, name, v)
				}
				continue
			}
			behind := rec.Release.Sequence > highest || (rec.Pruned == nil && dirExists)
			if !behind {
				continue // a record of a release removed by hand; its sequence is accounted for
			}
			if !repair {
				return nil, &StateBehindError{State: StatePath(l.path), Record: filepath.Join(l.path, dirReleases, name, recordName(v)), Name: name, Version: v, Sequence: rec.Release.Sequence, Highest: highest}
			}
			if b == nil {
				b = &BundleState{Releases: []Release{}, History: []Event{}}
				st.Bundles[name] = b
			}
			if rec.Release.Sequence > b.HighestSequence {
				b.HighestSequence = rec.Release.Sequence
				rc.done = append(rc.done, fmt.Sprintf("raised the highest accepted sequence of %s to %d from the record of %s", name, b.HighestSequence, v))
			}
			if rec.Pruned == nil && dirExists {
				b.Releases = append(b.Releases, rec.Release)
				sortReleases(b.Releases)
				if rec.Pending != "" {
					rc.done = append(rc.done, fmt.Sprintf("listed %s %s (sequence %d) again from the record of an install that may not have completed (the state file it started from is gone)", name, v, rec.Release.Sequence))
				} else {
					rc.done = append(rc.done, fmt.Sprintf("listed %s %s (sequence %d) again from its record", name, v, rec.Release.Sequence))
				}
			} else if rec.Pruned != nil {
				mark(rc.pruned, name, v)
			}
			merged = true
			rc.changed = true
		}
		// The link switches only after a commit: where the state was
		// behind, it names the current release better than the state.
		if b != nil && repair && (merged || b.Current == "") && linked != "" && linked != b.Current && b.release(linked) != nil {
			b.Current = linked
			rc.changed = true
			rc.done = append(rc.done, fmt.Sprintf("made %s %s current again, as %s points at it", name, linked, CurrentLink(l.path, name)))
		}
	}
	return rc, nil
}

// backfillRecords writes the record of every release the state lists
// whose record is missing, marked pruned, aborted or still pending (with
// its directory present): a root installed by an airlock older than the
// records, an install stopped between its commit point and clearing its
// record's pending mark, a prune stopped before its commit point, or a
// state restored from a backup that lists an aborted release.
func (l *layout) backfillRecords(st *State) error {
	for _, name := range sortedNames(st) {
		nr, err := l.nameDir(name, false)
		if errorsIsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		recs, err := l.readRecords(name)
		if err != nil {
			nr.Close()
			return err
		}
		var missing []Release
		for _, r := range st.Bundles[name].Releases {
			if rec := recs[r.Version]; rec != nil && rec.Pruned == nil && rec.Pending == "" && rec.Aborted == nil {
				continue
			}
			if _, err := nr.Lstat(r.Version); err == nil {
				missing = append(missing, r)
			}
		}
		nr.Close()
		for _, r := range missing {
			if err := l.writeRecord(name, &releaseRecord{Release: r}); err != nil {
				return err
			}
		}
	}
	return nil
}

// markPruned rewrites the record of each release as pruned at now.
func (l *layout) markPruned(name string, r Release, now time.Time) error {
	t := now.UTC()
	return l.writeRecord(name, &releaseRecord{Release: r, Pruned: &t})
}

// Repair rebuilds the install state from the release records when the
// state file is missing, older than them (a *StateBehindError) or damaged
// (a *StateError with Repairable set: the file is renamed to
// state.json.corrupt-TIME and the state rebuilt from the records alone),
// under the lock: releases whose directories exist are listed again, the
// highest accepted sequence is raised to the highest recorded one, and the
// current release is taken from DIR/current/NAME. Then it repairs what a
// crash left, as every locked command does. It returns what it did, one
// line each. The history of switches is not in the records and stays as
// the state had it.
//
// It never lowers a sequence a record proves and never removes the release
// DIR/current/NAME points at. When it cannot account for a release
// directory (no state lists it, no record describes it) it refuses with a
// *StateError and changes nothing. In a directory with neither DIR/.airlock
// nor DIR/releases it refuses with ErrNotInstalled and creates nothing.
//
// After a rebuild, an install's audit entry a crash left pending is
// appended when the rebuilt state lists its release (same version,
// sequence and root), noted as recorded by the repair.
func Repair(ctx context.Context, root string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := precheck(root); err != nil {
		return nil, err
	}
	if _, err := statDir(root); err != nil {
		return nil, err
	}
	// A directory with neither DIR/.airlock nor DIR/releases holds nothing
	// to repair: create nothing there.
	if !hasInstallState(root) {
		return nil, fmt.Errorf("%w: no airlock install state in %s (no %s or %s); nothing was changed", ErrNotInstalled, root, dirAirlock, dirReleases)
	}
	l, err := openLayout(root, true)
	if err != nil {
		return nil, err
	}
	defer l.close()
	now := time.Now()
	if err := l.acquireLock(now); err != nil {
		return nil, err
	}
	st, err := l.readState()
	var damaged *StateError
	setAside := errors.As(err, &damaged) && damaged.Repairable
	if setAside {
		st = &State{SchemaVersion: StateSchemaVersion, Bundles: map[string]*BundleState{}}
	} else if err != nil {
		return nil, err
	}
	if err := l.ensure(); err != nil {
		return nil, err
	}
	rc, err := l.reconcile(st, true)
	if err != nil {
		return nil, err
	}
	// Rebuilt: the state is missing, damaged or was behind. Check all of
	// it before changing anything.
	rebuilt := setAside || l.stateDigest == "" || rc.changed
	if !rebuilt {
		return l.recover(st)
	}
	if err := st.validate(); err != nil {
		return nil, &StateError{Path: StatePath(l.path), Root: l.path, Reason: "cannot be rebuilt from the records: " + err.Error(), Fix: "restore it from a backup"}
	}
	left, err := l.leftovers(st, rc, true)
	if err != nil {
		return nil, err
	}
	var done []string
	if setAside {
		aside, err := l.setStateAside(now)
		if err != nil {
			return nil, err
		}
		done = append(done, fmt.Sprintf("set the damaged %s aside as %s (%s)", StatePath(l.path), aside, damaged.Reason))
	}
	// Ambiguous pending records are settled before the state changes:
	// their pending marks name the state file about to be replaced.
	more, raised, err := l.settle(st, rc, now)
	done = append(done, more...)
	if err != nil {
		return done, err
	}
	more, err = l.removeLeftovers(left)
	done = append(done, more...)
	if err != nil {
		return done, err
	}
	l.rebuilt = true
	if rc.changed || setAside || raised {
		if err := l.writeState(st); err != nil {
			return done, err
		}
	}
	done = append(done, rc.done...)
	more, err = l.recover(st)
	return append(done, more...), err
}

// setStateAside renames DIR/.airlock/state.json to
// state.json.corrupt-TIME (never over an existing file) and returns the
// new path.
func (l *layout) setStateAside(now time.Time) (string, error) {
	base := fileStateAside + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := l.air.Lstat(name); errorsIsNotExist(err) {
			break
		} else if err != nil {
			return "", err
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	if err := l.air.Rename(fileState, name); err != nil {
		return "", fmt.Errorf("set %s aside: %w", StatePath(l.path), err)
	}
	l.stateDigest = ""
	if err := syncDir(l.air, "."); err != nil {
		return "", err
	}
	return filepath.Join(l.path, dirAirlock, name), nil
}

// hasInstallState reports whether DIR/.airlock or DIR/releases exists (in
// any form: precheck has refused links and other types).
func hasInstallState(dir string) bool {
	for _, n := range []string{dirAirlock, dirReleases} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}
