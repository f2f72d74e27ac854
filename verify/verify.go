package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/internal/meter"
	"github.com/airlock-dev/airlock/policy"
)

// Options configures Verify. Policy is required; the zero value of every
// other field works.
type Options struct {
	// Policy is the trust policy. Required.
	Policy *policy.Policy
	// Now is the time every time check uses; the zero value means time.Now().
	Now time.Time
	// Path names the bundle in the report.
	Path string
	// Trusted, when set, is called once trust is decided (signatures and
	// policy passed) and before any body byte is read, with the verified
	// head. An error stops verification (a consumer that cannot proceed).
	Trusted func(ctx context.Context, h *bundle.Head) error
	// Blob, when set, receives every body blob after trust was decided, in
	// bundle order; reading it to the end checks it. nil discards the bytes
	// after checking them. A blob that fails its check is reported as a
	// finding; the consumer must not use its bytes.
	Blob func(ctx context.Context, e *bundle.BodyEntry) error
	// HeadOnly stops once trust is decided from the head: the body is not
	// read, nothing is checked against the body's digests, and the report
	// says so (Report.HeadOnly; Verified stays false). Blob is not called.
	HeadOnly bool
	// Upstream re-verifies upstream image signatures when the matched rule
	// has images entries; without it such a rule fails verification.
	Upstream UpstreamVerifier
	// Progress receives bytes checked; nil reports nothing.
	Progress bundle.Progress
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Verify reads a bundle from r in one streaming pass. It decides trust from
// the head alone (signatures, policy rule, statement fields) before it reads
// a single body byte; then it checks every body blob against the signed
// digests, collecting every integrity finding. It returns a report in every
// case; err is nil only when the bundle verified. A *Failure (see IsFailure)
// means the bundle was rejected; any other error means it could not be
// verified.
func Verify(ctx context.Context, r io.Reader, opts Options) (*Report, error) {
	rep, start, fail := newReport(opts)
	if opts.Policy == nil {
		return fail("policy", ErrNoPolicy)
	}
	counter := &meter.Reader{R: r}
	br, err := bundle.NewReader(counter)
	if err != nil {
		return fail("head", classifyHead(err))
	}
	defer br.Close()
	return run(ctx, opts, rep, start, br.Head(), &streamBody{br: br, counter: counter})
}

// VerifyArchive verifies a v2 bundle read out of order from its file or
// volume set: trust is decided from the head exactly as Verify does, then
// the body is checked on every core (bundle.Archive.CheckBody). Options.Blob
// is not supported here (its consumers need the bytes in order; use Verify).
func VerifyArchive(ctx context.Context, a *bundle.Archive, opts Options) (*Report, error) {
	rep, start, fail := newReport(opts)
	if opts.Blob != nil {
		return fail("body", errors.New("verify: a Blob consumer needs Verify, not VerifyArchive"))
	}
	if opts.Policy == nil {
		return fail("policy", ErrNoPolicy)
	}
	return run(ctx, opts, rep, start, a.Head(), &archiveBody{a: a})
}

// newReport starts the report of one verification.
func newReport(opts Options) (*Report, time.Time, func(string, error) (*Report, error)) {
	start := time.Now()
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	rep := &Report{SchemaVersion: 1, Now: now.UTC(), Signers: []SignerInfo{}, Checks: []policy.Check{}, Findings: []bundle.Finding{}, Policy: PolicyInfo{Rule: -1},
		Artifacts: []bundle.Artifact{}, Files: []bundle.ContentFile{}, HeadOnly: opts.HeadOnly}
	rep.Bundle.Path = opts.Path
	if opts.Policy != nil {
		rep.Policy.Path, rep.Policy.Digest = opts.Policy.Path, opts.Policy.Digest
	}
	return rep, start, failer(rep, start)
}

// failer returns the function that records a failure in rep.
func failer(rep *Report, start time.Time) func(string, error) (*Report, error) {
	return func(stage string, err error) (*Report, error) {
		rep.Stage, rep.Error = stage, err.Error()
		rep.Throughput.Seconds = time.Since(start).Seconds()
		return rep, err
	}
}

// body is how the body of a bundle whose head was trusted gets checked.
type body interface {
	// check checks every body blob and returns the bytes checked.
	check(ctx context.Context, opts Options, ov *overall) (int64, []bundle.Finding, error)
	// compressed is the number of compressed bytes read so far.
	compressed() int64
}

// run decides trust from head, then checks the body.
func run(ctx context.Context, opts Options, rep *Report, start time.Time, head *bundle.Head, b body) (*Report, error) {
	fail := failer(rep, start)
	pol := opts.Policy
	now := rep.Now
	describeBundle(&rep.Bundle, head)
	describeContent(rep, head)

	rule, err := pol.Match(head.Manifest.Name)
	if err != nil {
		return fail("policy", &Failure{Stage: "policy", Err: err})
	}
	rep.Policy.Rule, rep.Policy.Match, rep.Policy.Signers = rule.Index, rule.Match, rule.Signers
	rep.Policy.Threshold, rep.Policy.Channel = rule.Threshold, rule.Channel
	if rule.MaxAge > 0 {
		rep.Policy.MaxAge = rule.MaxAge.String()
	}

	verified, signers, err := checkSignatures(head.Envelope, pol, rule)
	rep.Signers = signers
	if err != nil {
		return fail("signatures", &Failure{Stage: "signatures", Err: err})
	}
	st := head.Statement.Predicate
	facts := policy.Facts{
		Name: st.Name, Version: st.Version, Channel: st.Channel, Sequence: st.Sequence,
		Created: st.Created, Expires: st.Expires, Now: now, Verified: verified, Images: imageFacts(head), Charts: chartFacts(head),
	}
	dec, err := rule.Evaluate(pol, facts)
	if dec != nil {
		rep.Checks = append(rep.Checks, dec.Checks...)
	}
	if err != nil {
		return fail("policy", &Failure{Stage: "policy", Err: err})
	}

	if err := checkUpstream(ctx, opts, head, rule, rep); err != nil {
		return fail("upstream", err)
	}

	// Trust is decided; now every byte.
	rep.Trusted = true
	if opts.Trusted != nil {
		if err := opts.Trusted(ctx, head); err != nil {
			return fail("trusted", err)
		}
	}
	if opts.HeadOnly {
		rep.Checks = append(rep.Checks, policy.Check{Name: "integrity", OK: false, Detail: fmt.Sprintf("not checked: head only, the body (%d blobs, %d bytes) was not read", len(head.Body), head.Manifest.Totals.BodyBytes)})
		rep.Throughput = Throughput{Compressed: b.compressed(), Seconds: time.Since(start).Seconds()}
		return rep, nil
	}
	ov := newOverall(opts.Progress, head)
	checkedBytes, findings, err := b.check(ctx, opts, ov)
	if err != nil {
		rep.Findings = append(rep.Findings, findings...)
		if IsFailure(err) {
			err = &Failure{Stage: "body", Err: err}
		}
		return fail("body", err)
	}
	rep.Checks = append(rep.Checks, policy.Check{Name: "integrity", OK: true, Detail: fmt.Sprintf("%d blobs, %d bytes match their signed digests; no extra, missing or trailing data", len(head.Body), checkedBytes)})
	rep.Verified = true
	el := time.Since(start).Seconds()
	rep.Throughput = Throughput{Bytes: checkedBytes, Compressed: b.compressed(), Seconds: el}
	if el > 0 {
		rep.Throughput.MiBPerSecond = float64(checkedBytes) / (1 << 20) / el
	}
	return rep, nil
}

func describeBundle(b *BundleInfo, h *bundle.Head) {
	m := h.Manifest
	p := h.Statement.Predicate
	b.Name, b.Version, b.Sequence, b.Channel = m.Name, m.Version, p.Sequence, p.Channel
	b.Created, b.Expires = p.Created, p.Expires
	b.Root, b.ManifestDigest = m.Root.Digest, h.ManifestDigest
	if len(h.Signatures) > 0 {
		b.SignaturesDigest = checked.Digest(h.Signatures)
	}
	b.Artifacts, b.Blobs, b.Bytes = m.Totals.Artifacts, m.Totals.Blobs, m.Totals.Bytes
}

// describeContent lists the head's artifacts and their files in the report.
func describeContent(rep *Report, h *bundle.Head) {
	if h.Manifest.Artifacts != nil {
		rep.Artifacts = h.Manifest.Artifacts
	}
	rep.Files = h.ContentFiles()
}

// checkSignatures verifies every signature with the policy's keys. The key
// comes from the policy and fixes the algorithm; the envelope's key id is
// only used to say which key a signature claims. It returns the distinct
// fingerprints of policy keys with a valid signature. A signature that claims
// a policy key but does not verify with it fails verification: it is either
// tampering or a broken signer, never a warning.
func checkSignatures(env *bundle.Envelope, pol *policy.Policy, rule *policy.Rule) ([]string, []SignerInfo, error) {
	pae, err := env.PAE()
	if err != nil {
		return nil, nil, err
	}
	type keyVerifier struct {
		name, fp string
		v        signature.Verifier
	}
	var vs []keyVerifier
	for _, name := range pol.KeyNames {
		k := pol.Keys[name]
		v, err := k.Verifier()
		if err != nil {
			return nil, nil, fmt.Errorf("policy key %s (%s): %w", name, k.Fingerprint, err)
		}
		vs = append(vs, keyVerifier{name: name, fp: k.Fingerprint, v: v})
	}
	inRule := map[string]bool{}
	for _, n := range rule.Signers {
		inRule[n] = true
	}
	seen := map[string]bool{}
	var verified []string
	var infos []SignerInfo
	for i, s := range env.Signatures {
		sig, err := base64.StdEncoding.Strict().DecodeString(s.Sig)
		if err != nil {
			return nil, infos, fmt.Errorf("signature %d: %w", i, err)
		}
		info := SignerInfo{KeyID: s.KeyID}
		var claimedErr error // why the key the signature names refused it
		for _, kv := range vs {
			verr := kv.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae))
			if verr != nil && kv.fp == s.KeyID {
				claimedErr = verr
			}
			if verr == nil {
				info.Verified, info.Name, info.Counted = true, kv.name, inRule[kv.name]
				info.Algorithm = pol.Keys[kv.name].Algorithm
				if info.KeyID != kv.fp {
					info.Note = "key id in the envelope is " + s.KeyID + "; the signature verified with " + kv.fp
					info.KeyID = kv.fp
				}
				break
			}
		}
		if !info.Verified {
			if name := pol.KeyName(s.KeyID); name != "" {
				info.Name = name
				infos = append(infos, info)
				if errors.Is(claimedErr, keys.ErrSignatureEncoding) {
					return nil, infos, fmt.Errorf("%w: the signature for key %s (%s) is refused: %w", ErrUntrusted, name, s.KeyID, claimedErr)
				}
				return nil, infos, fmt.Errorf("%w: the signature for key %s (%s) does not verify: the bundle or its statement was altered after signing", ErrUntrusted, name, s.KeyID)
			}
			info.Note = "key not in the policy; not counted"
		} else if !info.Counted {
			info.Note = "key is in the policy but not a signer of rule " + rule.Match + "; not counted"
		}
		if info.Verified && seen[info.KeyID] {
			info.Counted = false
			info.Note = "second signature by the same key; counted once"
		}
		if info.Verified {
			if !seen[info.KeyID] {
				verified = append(verified, info.KeyID)
			}
			seen[info.KeyID] = true
		}
		infos = append(infos, info)
	}
	sort.Strings(verified)
	return verified, infos, nil
}

// imageFacts lists every artifact the image rules of the policy apply to
// (the kind table's ImagePolicy), with its platforms and whether an SBOM
// describes it.
func imageFacts(h *bundle.Head) []policy.ImageFacts {
	described := map[string]bool{}
	for _, a := range h.Manifest.Artifacts {
		if a.SubjectDigest != "" && a.IsSBOM() {
			described[a.SubjectDigest] = true
		}
	}
	var out []policy.ImageFacts
	for _, a := range h.Manifest.Artifacts {
		if a.Info().ImagePolicy {
			out = append(out, policy.ImageFacts{Ref: a.Ref, Platforms: a.Platforms, HasSBOM: described[a.Digest]})
		}
	}
	return out
}

// streamBody checks the body front to back as it streams (any version,
// any input), handing each blob to Options.Blob.
type streamBody struct {
	br      *bundle.Reader
	counter *meter.Reader
}

func (s *streamBody) compressed() int64 { return s.counter.N }

func (s *streamBody) check(ctx context.Context, opts Options, ov *overall) (int64, []bundle.Finding, error) {
	var checkedBytes int64
	for {
		if err := ctx.Err(); err != nil {
			return checkedBytes, nil, err
		}
		e, err := s.br.Next()
		if err == io.EOF {
			return checkedBytes, nil, nil
		}
		if err != nil {
			return checkedBytes, s.br.Findings(), err
		}
		if opts.Progress != nil {
			opts.Progress.Start(e.Digest, "verify "+e.Digest[:19], e.Size)
			id := e.Digest
			e.OnRead(func(n int) { opts.Progress.Add(id, int64(n)); ov.read(n) })
		}
		if opts.Blob != nil {
			err = opts.Blob(ctx, e)
		} else {
			_, err = io.Copy(io.Discard, e)
		}
		if opts.Progress != nil {
			opts.Progress.Done(e.Digest)
		}
		if err == nil {
			ov.blobDone(e.Digest)
		}
		if err != nil && !errors.Is(err, bundle.ErrIntegrity) {
			return checkedBytes, nil, err
		}
		checkedBytes += e.Size
	}
}

// archiveBody checks a v2 body out of order on every core.
type archiveBody struct {
	a *bundle.Archive
	n int64
}

func (b *archiveBody) compressed() int64 { return b.n }

func (b *archiveBody) check(ctx context.Context, opts Options, ov *overall) (int64, []bundle.Finding, error) {
	h := b.a.Head()
	var mu sync.Mutex
	left := make(map[string]int64, len(h.Body))
	started := map[string]bool{}
	for _, d := range h.Body {
		left[d.Digest] = d.Size
		if d.Size == 0 {
			ov.blobDone(d.Digest)
		}
	}
	// Bars appear as blobs are reached: several at once, one per worker.
	err := b.a.CheckBody(ctx, runtime.GOMAXPROCS(0), func(d bundle.Descriptor, n int64) {
		mu.Lock()
		defer mu.Unlock()
		ov.read(int(n))
		if opts.Progress != nil && !started[d.Digest] {
			started[d.Digest] = true
			opts.Progress.Start(d.Digest, "verify "+d.Digest[:19], d.Size)
		}
		if opts.Progress != nil {
			opts.Progress.Add(d.Digest, n)
		}
		left[d.Digest] -= n
		if left[d.Digest] == 0 {
			if opts.Progress != nil {
				opts.Progress.Done(d.Digest)
			}
			ov.blobDone(d.Digest)
		}
	})
	b.n = h.Frames.CompressedSize
	if set := b.a.Set(); err == nil && set.Volumes {
		// Every frame matched its signed sha256; each volume's file must
		// also match its own, as mirror and install check it.
		err = set.Check(ctx)
	}
	var ie *bundle.IntegrityError
	if errors.As(err, &ie) {
		return h.Manifest.Totals.BodyBytes, ie.Findings, err
	}
	if err != nil {
		return 0, nil, err
	}
	return h.Manifest.Totals.BodyBytes, nil, nil
}
