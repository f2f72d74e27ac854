package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
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
	start := time.Now()
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	rep := &Report{SchemaVersion: 1, Now: now.UTC(), Signers: []SignerInfo{}, Checks: []policy.Check{}, Findings: []bundle.Finding{}, Policy: PolicyInfo{Rule: -1},
		Artifacts: []bundle.Artifact{}, Files: []bundle.ContentFile{}, HeadOnly: opts.HeadOnly}
	rep.Bundle.Path = opts.Path
	fail := func(stage string, err error) (*Report, error) {
		rep.Stage, rep.Error = stage, err.Error()
		rep.Throughput.Seconds = time.Since(start).Seconds()
		return rep, err
	}
	pol := opts.Policy
	if pol == nil {
		return fail("policy", ErrNoPolicy)
	}
	rep.Policy.Path, rep.Policy.Digest = pol.Path, pol.Digest

	counter := &meter.Reader{R: r}
	br, err := bundle.NewReader(counter)
	if err != nil {
		return fail("head", classifyHead(err))
	}
	defer br.Close()
	head := br.Head()
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
		rep.Throughput = Throughput{Compressed: counter.N, Seconds: time.Since(start).Seconds()}
		return rep, nil
	}
	var checkedBytes int64
	ov := newOverall(opts.Progress, head)
	for {
		if err := ctx.Err(); err != nil {
			return fail("body", err)
		}
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			rep.Findings = append(rep.Findings, br.Findings()...)
			if IsFailure(err) {
				err = &Failure{Stage: "body", Err: err}
			}
			return fail("body", err)
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
			return fail("body", err)
		}
		checkedBytes += e.Size
	}
	rep.Checks = append(rep.Checks, policy.Check{Name: "integrity", OK: true, Detail: fmt.Sprintf("%d blobs, %d bytes match their signed digests; no extra, missing or trailing data", len(head.Body), checkedBytes)})
	rep.Verified = true
	el := time.Since(start).Seconds()
	rep.Throughput = Throughput{Bytes: checkedBytes, Compressed: counter.N, Seconds: el}
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
