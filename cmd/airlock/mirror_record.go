package main

import (
	"context"
	"time"

	"github.com/airlock-dev/airlock/attest"
	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/internal/errclass"
	"github.com/airlock-dev/airlock/mirror"
	"github.com/airlock-dev/airlock/verify"
)

// recordMirror runs after mirror.Mirror. With --attest it writes the
// verification record (PASSED or FAILED) once verification finished and,
// when the bundle was mirrored, attaches the record to every mirrored image
// as a referrer (listed in res.Mappings as kind "record"). With --audit-log
// it appends what the run did. It returns the run's error: merr, or else
// the first error of these steps.
func recordMirror(ctx context.Context, e *env, f *mirrorFlags, rec *recorder, mopts mirror.MirrorOptions, res *mirror.Result, merr error) error {
	var recordDigest string
	if rec != nil && (merr == nil || verify.IsFailure(merr)) {
		data, d, err := rec.writeRecord(ctx, e, res.Verify)
		recordDigest = d
		switch {
		case err != nil && merr == nil:
			merr = err
		case err == nil && merr == nil && data != nil:
			refs, err := mirror.AttachRecord(ctx, mopts, res, mirror.Record{Data: data, MediaType: attest.MediaType, Annotations: map[string]string{
				"in-toto.io/predicate-type":        attest.PredicateType,
				"org.opencontainers.image.created": res.Verify.Now.Format(time.RFC3339),
				"dev.airlock.record.result":        attest.Passed,
			}})
			res.Mappings = append(res.Mappings, refs...)
			if err != nil {
				merr = err
			}
		}
	}
	if f.auditLog != "" {
		if err := appendMirrorAudit(f, res, merr, recordDigest); err != nil && merr == nil {
			merr = err
		}
	}
	return merr
}

// appendMirrorAudit appends one entry for this mirror run to --audit-log.
func appendMirrorAudit(f *mirrorFlags, res *mirror.Result, merr error, record string) error {
	e := auditEntry(res.Verify, audit.OpMirror, merr)
	e.Record, e.Target = record, res.Target
	if merr == nil {
		e.Outcome = plural(len(res.Mappings), "artifact") + " mirrored"
	}
	log, err := audit.Open(f.auditLog)
	if err != nil {
		return err
	}
	defer log.Close()
	_, _, err = log.Append(e)
	return err
}

// auditEntry describes a verification and its outcome as an audit entry.
func auditEntry(rep *verify.Report, op string, runErr error) audit.Entry {
	e := audit.Entry{Time: time.Now(), Operation: op, Result: audit.ResultAccepted, Airlock: version()}
	switch {
	case runErr == nil:
	case errclass.Of(runErr) == errclass.Rejected:
		e.Result, e.Reason = audit.ResultRejected, clipReason(runErr.Error())
	default:
		e.Result, e.Reason = audit.ResultFailed, clipReason(runErr.Error())
	}
	if rep == nil {
		return e
	}
	e.Time = rep.Now
	b := rep.Bundle
	if b.Name != "" {
		ab := &audit.Bundle{Name: b.Name, Version: b.Version, Sequence: b.Sequence, Root: b.Root, Path: b.Path}
		if rep.Trusted {
			e.Bundle = ab
		} else {
			e.Claimed = ab // the signatures or the policy did not pass: unverified
		}
	}
	if rep.Policy.Digest != "" {
		e.Policy = &audit.Policy{Path: rep.Policy.Path, Digest: rep.Policy.Digest}
	}
	for _, s := range rep.Signers {
		if s.Verified && s.Counted {
			e.Signers = append(e.Signers, audit.Signer{Name: s.Name, KeyID: s.KeyID})
		}
	}
	return e
}

// clipReason keeps an error message well inside an audit line's limit.
func clipReason(s string) string {
	const max = 4096
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
