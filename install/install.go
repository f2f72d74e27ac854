package install

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/ctxio"
	"github.com/airlock-dev/airlock/verify"
)

// Outcomes of an install, in Result.Outcome.
const (
	// OutcomeInstalled: a new release was written and made current.
	OutcomeInstalled = "installed"
	// OutcomeSwitched: the bundle is an installed release, which was made current again.
	OutcomeSwitched = "switched"
	// OutcomeUnchanged: the bundle is the current release already; nothing was written.
	OutcomeUnchanged = "unchanged"
)

// Result is what Install did.
type Result struct {
	// Verify is the verification report (always set once the bundle was read).
	Verify *verify.Report `json:"verify"`
	// Root is the install root.
	Root string `json:"root"`
	// Name and Version are the bundle's, empty when the head was not read.
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// Sequence is the bundle's signed sequence.
	Sequence uint64 `json:"sequence,omitempty"`
	// Outcome is one of OutcomeInstalled, OutcomeSwitched, OutcomeUnchanged;
	// empty when the install failed.
	Outcome string `json:"outcome,omitempty"`
	// Downgrade is true when the release has a lower sequence than the
	// highest accepted (allowed by --allow-downgrade and the policy).
	Downgrade bool `json:"downgrade,omitempty"`
	// Previous is the version that was current before, "" for none.
	Previous string `json:"previous,omitempty"`
	// ReleaseDir is DIR/releases/NAME/VERSION.
	ReleaseDir string `json:"releaseDir,omitempty"`
	// Link is DIR/current/NAME.
	Link string `json:"link,omitempty"`
	// Files and Bytes count the files of the release.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Images counts the bundle's images: verified, and mirrored only with
	// Options.Mirror (install places files and models only).
	Images int `json:"images"`
	// Record is the digest of the signed verification record written for
	// this install (Options.Record), "" for none.
	Record string `json:"record,omitempty"`
	// AuditHead is the digest of the audit log line this install appended
	// (DIR/.airlock/audit.log), for a refused install too: note it to
	// detect later truncation.
	AuditHead string `json:"auditHead,omitempty"`
	// AuditSkipped says why the line of a refused install could not be
	// appended to an audit log (the root is locked by another run, ...).
	AuditSkipped []string `json:"auditSkipped,omitempty"`
	// RecordError is why Options.Record could not write the FAILED record
	// of a rejected bundle; the install's error is the rejection.
	RecordError error `json:"-"`
	// Charts counts the bundle's Helm charts: verified, and mirrored only
	// with Options.Mirror, like images.
	Charts int `json:"charts,omitempty"`
	// Repaired lists what was fixed in a root a crash left behind.
	Repaired []string `json:"repaired,omitempty"`
	// Seconds is the wall-clock time of the run.
	Seconds float64 `json:"seconds"`
}

type installer struct {
	opts     Options
	now      time.Time
	log      *slog.Logger
	l        *layout
	st       *State
	plan     *plan
	id       identity
	dec      decision
	previous string
	envelope []byte // the head's signatures entry, recorded with the release
	repaired []string
	images   int
	charts   int

	stagingName string
	stg         *os.Root
	dirs        map[string]bool
	staged      map[string]bool
	bufs        [2][]byte
	published   bool // staging became releases/NAME/VERSION
	pending     bool // its pending release record was written
	// prior is the record of this version the pending record replaced (an
	// aborted or pruned one), restored by cleanup; nil for none.
	prior     *releaseRecord
	committed bool // the state lists the release
	// final is the release record written, without the pending mark, once
	// the state lists the release; nil for a switch.
	final *releaseRecord

	rep        *verify.Report // for the audit entry
	record     string         // digest of the verification record, for the audit entry
	auditHead  string         // digest of the audit line appended
	auditEntry audit.Entry    // the entry of the install about to commit
}

// Install verifies the bundle read from r and installs its files and
// models under opts.Root, in one streaming pass. Trust and freshness are
// decided from the head before a body byte is read or a file is written;
// each file is written only from bytes that matched their signed digest.
//
// It returns a Result in every case once the bundle was read. A
// *verify.Failure error means the bundle was rejected: untrusted, malformed,
// tampered, a replay or downgrade (ErrReplay, ErrDowngradeNotAllowed,
// ErrSequenceJump) or unsafe install paths (ErrUnsafeTarget). Other errors
// (ErrLocked, ErrState, ErrNoSpace, ErrUnsafeRoot, I/O, registry) mean it
// could not install; the previous release stays current in every case.
func Install(ctx context.Context, r io.Reader, opts Options) (*Result, error) {
	start := time.Now()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	in := &installer{opts: opts, now: opts.Now, log: opts.Logger}
	if in.now.IsZero() {
		in.now = time.Now()
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	res := &Result{Root: opts.Root}
	isRoot := wasRoot(opts.Root)
	if err := precheck(opts.Root); err != nil {
		in.refused(ctx, nil, res, err, isRoot)
		return res, err
	}
	defer in.cleanup()
	rep, err := verify.Verify(ctx, r, verify.Options{
		Policy: opts.Policy, Now: in.now, Path: opts.Path, Progress: opts.Progress, Logger: opts.Logger,
		Trusted: in.trusted, Blob: in.blob, Upstream: opts.Upstream,
	})
	res.Verify = rep
	if in.plan != nil {
		res.Name, res.Version, res.Sequence = in.plan.name, in.plan.version, in.id.sequence
		res.Files, res.Bytes, res.Images, res.Charts = len(in.plan.files), in.plan.bytes, in.images, in.charts
		res.ReleaseDir, res.Link = ReleaseDir(opts.Root, in.plan.name, in.plan.version), CurrentLink(opts.Root, in.plan.name)
	}
	res.Repaired = in.repaired
	if opts.Mirror != nil {
		// Always: Finish waits for uploads reading staged files, which
		// cleanup removes. With an error it pushes nothing more.
		merr := opts.Mirror.Finish(ctx, rep, err)
		if merr != nil && !verify.IsFailure(err) {
			err = merr // a failed upload is the cause of a stopped stream
		}
	}
	if err == nil && opts.Record != nil {
		res.Record, err = opts.Record(ctx, rep)
	}
	if err == nil {
		in.rep, in.record = rep, res.Record
		err = in.commit(ctx, rep, res)
		res.AuditHead = in.auditHead
	}
	if loggable(err) && !in.committed {
		in.refused(ctx, rep, res, err, isRoot)
	}
	res.Repaired = in.repaired
	res.Seconds = time.Since(start).Seconds()
	return res, err
}

// refused records a refusal (see refusal.go): with Options.Record, the
// FAILED verification record of a rejected bundle, then the audit line,
// while the run still holds the root's lock.
func (in *installer) refused(ctx context.Context, rep *verify.Report, res *Result, err error, isRoot bool) {
	if in.opts.Record != nil && rep != nil && res.Record == "" && verify.IsFailure(err) {
		res.Record, res.RecordError = in.opts.Record(ctx, rep)
	}
	e := refusalEntry(in.now, audit.OpInstall, in.opts.Airlock, err)
	describeRefused(&e, rep, in.opts.Path)
	e.Record = res.Record
	res.AuditHead, res.AuditSkipped = logRefusal(in.opts.Root, isRoot, in.l, in.opts.AuditLog, e)
}

// rejected marks a refusal caused by the bundle itself as a verification failure.
func rejected(err error) error { return &verify.Failure{Stage: "install", Err: err} }

// trusted runs once signatures and policy accepted the head, before any body
// byte: it plans the files, takes the lock, loads the state, repairs what a
// crash left, decides freshness, checks free space and starts staging.
func (in *installer) trusted(ctx context.Context, h *bundle.Head) error {
	p, err := makePlan(h)
	if err != nil {
		return rejected(err)
	}
	in.plan = p
	in.envelope = h.Signatures
	for _, a := range h.Manifest.Artifacts {
		switch a.Kind {
		case bundle.KindImage:
			in.images++
		case bundle.KindChart:
			in.charts++
		}
	}
	in.id = identity{name: p.name, version: p.version, sequence: h.Statement.Predicate.Sequence, root: h.Manifest.Root.Digest}
	rule, err := in.opts.Policy.Match(p.name)
	if err != nil {
		return rejected(err)
	}
	l, err := openLayout(in.opts.Root, true)
	if err != nil {
		return err
	}
	in.l = l
	if err := l.acquireLock(in.now); err != nil {
		return err
	}
	st, err := l.readState()
	if err != nil {
		return err
	}
	in.st = st
	// Checked now, before anything changes: DIR/releases/NAME.
	if nr, err := l.nameDir(p.name, false); err == nil {
		nr.Close()
	} else if !errorsIsNotExist(err) {
		return err
	}
	if fi, err := l.cur.Lstat(p.name); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return &RootError{Path: CurrentLink(l.path, p.name), Reason: "is not a symbolic link"}
	}
	if in.repaired, err = l.recover(st); err != nil {
		return err
	}
	b := st.Bundles[p.name]
	if b != nil {
		in.previous = b.Current
	}
	recs, err := l.readRecords(p.name)
	if err != nil {
		return err
	}
	var aborted []Release
	for v, rec := range recs {
		if rec.Aborted != nil && (b == nil || b.release(v) == nil) {
			aborted = append(aborted, rec.Release)
		}
	}
	in.prior = recs[p.version]
	in.dec, err = decide(b, aborted, in.id, in.now, in.opts.AllowDowngrade, rule.AllowDowngrade)
	if err != nil {
		return rejected(err)
	}
	in.log.Debug("install decision", "name", p.name, "version", p.version, "action", in.dec.act, "downgrade", in.dec.downgrade)
	if in.dec.act == actFresh {
		if err := in.startStaging(ctx); err != nil {
			return err
		}
	}
	if in.opts.Mirror != nil {
		return in.opts.Mirror.Trusted(ctx, h)
	}
	return nil
}

// blob stages a body blob install needs (and hands the staged file to the
// mirror when the registry wants it too); any other blob goes to the
// mirror or is checked and dropped.
func (in *installer) blob(ctx context.Context, e *bundle.BodyEntry) error {
	var r io.Reader = e // verify reports its progress, whoever reads it
	idx := in.plan.byDigest[e.Digest]
	if len(idx) == 0 || in.stg == nil {
		if in.opts.Mirror != nil {
			return in.opts.Mirror.Blob(ctx, e)
		}
		_, err := io.Copy(io.Discard, ctxio.Reader(ctx, r))
		return err
	}
	f := &in.plan.files[idx[0]]
	if err := in.writeFile(ctx, f, r); err != nil {
		return err
	}
	if in.opts.Mirror != nil && in.opts.Mirror.Wants(e.Digest) {
		return in.opts.Mirror.BlobFile(ctx, e.Descriptor, in.stagedPath(f.target))
	}
	return nil
}

// commit publishes a verified, fully staged release: write its release
// record marked pending, rename staging to releases/NAME/VERSION, write the
// state (the commit point), clear the record's mark, switch the link. The
// record is never behind the state, and the release directory never
// exists without it (see records.go).
func (in *installer) commit(ctx context.Context, rep *verify.Report, res *Result) error {
	name, version := in.plan.name, in.plan.version
	res.Previous = in.previous
	res.Downgrade = in.dec.downgrade
	switch in.dec.act {
	case actNoop:
		res.Outcome = OutcomeUnchanged
		if !in.l.linkIs(name, version) {
			if err := in.l.switchLink(name, version); err != nil {
				return err
			}
			in.repaired = append(in.repaired, fmt.Sprintf("pointed %s at %s %s", CurrentLink(in.l.path, name), name, version))
		}
		return nil
	case actSwitch:
		st := in.st.clone()
		b := st.Bundles[name]
		b.Current = version
		b.History = append(b.History, in.event())
		if err := in.writeStateAndLink(st, name, version); err != nil {
			return err
		}
		res.Outcome = OutcomeSwitched
		return nil
	}

	if err := in.copyDuplicates(ctx); err != nil {
		return err
	}
	if err := in.syncStaging(); err != nil {
		return err
	}
	nr, err := in.l.nameDir(name, true)
	if err != nil {
		return err
	}
	defer nr.Close()
	if _, err := nr.Lstat(version); err == nil {
		return &RootError{Path: ReleaseDir(in.l.path, name, version), Reason: "exists but is not in the install state"}
	}
	// A first install writes the (empty) state before anything under
	// releases/NAME: so the pending mark of its record names a state file,
	// and a release directory or record never stands beside a missing
	// state unless the state was lost.
	if in.l.stateDigest == "" {
		if err := in.l.writeState(in.st); err != nil {
			return err
		}
	}
	// The record before the release directory and the commit point,
	// marked pending with the state this install started from: every
	// release directory airlock creates is backed by a record (so recovery
	// never has to guess whose a directory is), and a lost state can
	// always be rebuilt with this release and its sequence.
	rel := in.release(rep)
	if err := in.l.writeRecord(name, &releaseRecord{Release: rel, Pending: in.l.stateDigest}); err != nil {
		return err
	}
	in.pending = true
	in.opts.failpoint(FailpointBeforeRename)
	in.stg.Close()
	in.stg = nil
	if err := in.l.root.Rename(dirAirlock+"/"+in.stagingName, dirReleases+"/"+name+"/"+version); err != nil {
		return fmt.Errorf("publish %s: %w", ReleaseDir(in.l.path, name, version), err)
	}
	in.published = true
	if err := syncDir(nr, "."); err != nil {
		return err
	}
	if err := syncDir(in.l.air, "."); err != nil {
		return err
	}
	in.opts.failpoint(FailpointAfterRename)

	st := in.st.clone()
	b := st.Bundles[name]
	if b == nil {
		b = &BundleState{Releases: []Release{}, History: []Event{}}
		st.Bundles[name] = b
	}
	b.Releases = append(b.Releases, rel)
	sortReleases(b.Releases)
	b.Current = version
	if in.id.sequence > b.HighestSequence {
		b.HighestSequence = in.id.sequence
	}
	b.History = append(b.History, in.event())
	in.final = &releaseRecord{Release: rel}
	if err := in.writeStateAndLink(st, name, version); err != nil {
		return err
	}
	res.Outcome = OutcomeInstalled
	return nil
}

// writeStateAndLink writes the state (after which the release counts as
// installed) and switches the link.
func (in *installer) writeStateAndLink(st *State, name, version string) error {
	if err := in.prepareInstallAudit(); err != nil {
		return err
	}
	in.opts.failpoint(FailpointBeforeState)
	before := in.l.stateDigest
	if err := in.l.writeState(st); err != nil {
		if in.l.stateDigest != before {
			// Renamed into place but not synced: the state on disk lists
			// the release, so cleanup must keep it.
			in.committed = true
		}
		return err
	}
	in.committed = true
	in.st = st
	in.opts.failpoint(FailpointAfterState)
	if in.final != nil {
		// If the mark cannot be cleared now, the next run under the lock
		// rewrites the record from the state (see backfillRecords).
		if err := in.l.writeRecord(name, in.final); err != nil {
			in.log.Warn("release record still marked pending; the next run rewrites it", "error", err)
		}
	}
	in.opts.failpoint(FailpointBeforeLink)
	if err := in.l.switchLink(name, version); err != nil {
		return fmt.Errorf("%s %s is installed, but %s could not be switched (the next install or `airlock status` repairs it): %w", name, version, CurrentLink(in.l.path, name), err)
	}
	in.opts.failpoint(FailpointAfterLink)
	head, err := afterCommit(in.l, name+" "+version+" is installed", in.opts.failpoint)
	in.auditHead = head
	if in.opts.AuditLog != "" {
		if xerr := appendExternal(in.opts.AuditLog, in.opts.Root, in.auditEntry); xerr != nil && err == nil {
			err = fmt.Errorf("%s %s is installed, but its audit line could not be appended to %s: %w", name, version, in.opts.AuditLog, xerr)
		}
	}
	return err
}

func (in *installer) event() Event {
	action := ActionInstall
	if in.dec.downgrade {
		action = ActionDowngrade
	}
	return Event{Time: in.now.UTC(), Action: action, From: in.previous, To: in.plan.version, Sequence: in.id.sequence, Root: in.id.root}
}

func (in *installer) release(rep *verify.Report) Release {
	r := Release{
		Version: in.plan.version, Sequence: in.id.sequence, Root: in.id.root,
		ManifestDigest: rep.Bundle.ManifestDigest, Channel: rep.Bundle.Channel, Created: rep.Bundle.Created.UTC(),
		Installed: in.now.UTC(), Bundle: in.opts.Path, Signers: []Signer{}, Files: in.plan.stateFiles(), Bytes: in.plan.bytes,
		Envelope: in.envelope,
	}
	for _, s := range rep.Signers {
		if s.Verified && s.Counted {
			r.Signers = append(r.Signers, Signer{KeyID: s.KeyID, Name: s.Name})
		}
	}
	return r
}

// cleanup removes what an unfinished install wrote and releases the lock.
func (in *installer) cleanup() {
	if in.l == nil {
		return
	}
	if in.stg != nil {
		in.stg.Close()
		in.stg = nil
	}
	if in.stagingName != "" && !in.published {
		in.l.air.RemoveAll(in.stagingName)
	}
	if in.pending && !in.committed {
		// This run knows it did not commit. The directory first: a
		// pending record alone is settled by the next run (see settle).
		if nr, err := in.l.nameDir(in.plan.name, false); err == nil {
			if !in.published || nr.RemoveAll(in.plan.version) == nil {
				if in.prior != nil {
					in.l.writeRecord(in.plan.name, in.prior)
				} else {
					nr.Remove(recordName(in.plan.version))
				}
			}
			nr.Close()
		}
	}
	in.l.close()
}

func sortReleases(rs []Release) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Sequence < rs[j-1].Sequence; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}
