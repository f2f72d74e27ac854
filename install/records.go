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
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Release records: replay protection that survives losing state.json.
//
// After the state lists a release (the commit point), install writes
// DIR/releases/NAME/.records/VERSION.json: the release as the state records
// it and the signed DSSE envelope it was installed from. Prune marks the
// record pruned before it drops the release from the state and keeps it, so
// the highest accepted sequence can always be rebuilt from the records. A
// record whose release the state does not know (the state file was deleted,
// or restored from an older backup) makes every command that changes the
// root refuse, until Repair merges the records back into the state; the
// highest accepted sequence is never reset.
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
		if strings.HasPrefix(n, stateTempPrefix) {
			continue // an unfinished write; recover removes it
		}
		version, ok := strings.CutSuffix(n, ".json")
		if !ok || !validVersion(version) || !e.Type().IsRegular() {
			return nil, &RootError{Path: p, Reason: "is not a release record airlock wrote"}
		}
		rec, err := readRecord(rr, n, p)
		if err != nil {
			return nil, err
		}
		if rec.Name != name || rec.Release.Version != version {
			return nil, &StateError{Path: p, Root: l.path, Reason: fmt.Sprintf("names %s %s, not %s %s", rec.Name, rec.Release.Version, name, version)}
		}
		out[version] = rec
	}
	return out, nil
}

func readRecord(r *os.Root, name, p string) (*releaseRecord, error) {
	bad := func(reason string) error { return &StateError{Path: p, Root: filepath.Dir(p), Reason: reason} }
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
	tmp := stateTempPrefix + randomSuffix()
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

// reconcile compares the state with the release records of every name that
// has a directory under DIR/releases; without repair it writes nothing. A record
// the state does not account for (a higher sequence than the state's
// highest, or an unpruned release the state does not list while its
// directory exists) means the state is missing or older: without repair
// that is a *StateBehindError; with repair the records are merged into st
// (releases whose directory exists are listed again, the highest sequence
// raised) and the state is written. pruned returns, per name, the versions
// whose records say a prune removed them (their directories may go).
func (l *layout) reconcile(st *State, repair bool) (done []string, pruned map[string]map[string]bool, err error) {
	pruned = map[string]map[string]bool{}
	if l.rel == nil {
		return nil, pruned, nil
	}
	ents, err := readDirNames(l.rel, ".")
	if err != nil {
		return nil, nil, err
	}
	changed := false
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !validName(name) {
			continue // recover reports what does not belong
		}
		recs, err := l.readRecords(name)
		if err != nil {
			return done, nil, err
		}
		b := st.Bundles[name]
		var highest uint64
		if b != nil {
			highest = b.HighestSequence
		}
		versions := make([]string, 0, len(recs))
		for v := range recs {
			versions = append(versions, v)
		}
		sort.Strings(versions)
		for _, v := range versions {
			rec := recs[v]
			listed := b != nil && b.release(v) != nil
			if listed || rec.Pruned != nil && rec.Release.Sequence <= highest {
				if rec.Pruned != nil && !listed {
					if pruned[name] == nil {
						pruned[name] = map[string]bool{}
					}
					pruned[name][v] = true
				}
				continue
			}
			dirExists := false
			if nr, err := l.nameDir(name, false); err == nil {
				_, serr := nr.Lstat(v)
				dirExists = serr == nil
				nr.Close()
			}
			behind := rec.Release.Sequence > highest || (rec.Pruned == nil && dirExists)
			if !behind {
				continue // a record of a release removed by hand; its sequence is accounted for
			}
			if !repair {
				return done, nil, &StateBehindError{State: StatePath(l.path), Record: filepath.Join(l.path, dirReleases, name, recordName(v)), Name: name, Version: v, Sequence: rec.Release.Sequence, Highest: highest}
			}
			if b == nil {
				b = &BundleState{Releases: []Release{}, History: []Event{}}
				st.Bundles[name] = b
			}
			if rec.Release.Sequence > b.HighestSequence {
				b.HighestSequence = rec.Release.Sequence
				done = append(done, fmt.Sprintf("raised the highest accepted sequence of %s to %d from the record of %s", name, b.HighestSequence, v))
			}
			if rec.Pruned == nil && dirExists {
				b.Releases = append(b.Releases, rec.Release)
				sortReleases(b.Releases)
				done = append(done, fmt.Sprintf("listed %s %s (sequence %d) again from its record", name, v, rec.Release.Sequence))
			}
			changed = true
		}
		if b != nil && repair && b.Current == "" && l.cur != nil {
			if t, err := l.cur.Readlink(name); err == nil {
				if v, ok := strings.CutPrefix(t, "../"+dirReleases+"/"+name+"/"); ok && b.release(v) != nil {
					b.Current = v
					changed = true
					done = append(done, fmt.Sprintf("made %s %s current again, as %s points at it", name, v, CurrentLink(l.path, name)))
				}
			}
		}
	}
	if changed {
		if err := st.validate(); err != nil {
			return done, nil, &StateError{Path: StatePath(l.path), Root: l.path, Reason: "cannot be rebuilt from the records: " + err.Error()}
		}
		if err := l.writeState(st); err != nil {
			return done, nil, err
		}
	}
	return done, pruned, nil
}

// backfillRecords writes the record of every release the state lists whose
// directory exists and whose record is missing or marked pruned: a root
// installed by an airlock older than the records, or an install stopped
// between its commit point and its record.
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
			if rec := recs[r.Version]; rec != nil && rec.Pruned == nil {
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
// state file is missing or older than them (a *StateBehindError), under the
// lock: releases whose directories exist are listed again, the highest
// accepted sequence is raised to the highest recorded one, and the current
// release is taken from DIR/current/NAME. Then it repairs what a crash left,
// as every locked command does. It returns what it did, one line each. The
// history of switches is not in the records and stays as the state had it.
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
	l, err := openLayout(root, true)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if err := l.acquireLock(time.Now()); err != nil {
		return nil, err
	}
	st, err := l.readState()
	if err != nil {
		return nil, err
	}
	if err := l.ensure(); err != nil {
		return nil, err
	}
	done, _, err := l.reconcile(st, true)
	if err != nil {
		return done, err
	}
	more, err := l.recover(st)
	return append(done, more...), err
}
