package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/errclass"
	"github.com/airlock-dev/airlock/policy"
)

var (
	// ErrUpstreamUnchecked reports a policy rule that requires upstream
	// image signatures (bundles[].images) when no UpstreamVerifier was
	// given: the requirement is never skipped.
	ErrUpstreamUnchecked = errclass.New(errclass.Rejected, "the policy requires upstream image signatures, but nothing was given to check them")
	// ErrUpstream reports images without the upstream signature their
	// policy rule requires.
	ErrUpstream = errclass.New(errclass.Rejected, "upstream signature requirement not met")
)

// UpstreamCheck is one image a policy images rule applies to, and which
// upstream signature satisfied it, or why none did.
type UpstreamCheck struct {
	Image  string `json:"image"`  // reference as packed
	Digest string `json:"digest"` // the image's root digest, the signed subject
	Rule   int    `json:"rule"`   // index in bundles[].images
	Match  string `json:"match"`  // that entry's glob
	OK     bool   `json:"ok"`
	// Form is "sigstore-bundle" (an OCI referrer), "cosign-tag" or
	// "cosign-key" (a cosign signature by a policy key).
	Form           string    `json:"form,omitempty"`
	Attachment     string    `json:"attachment,omitempty"` // digest of the attachment that satisfied it
	Issuer         string    `json:"issuer,omitempty"`
	Subject        string    `json:"subject,omitempty"`
	TrustedRoot    string    `json:"trustedRoot,omitempty"` // digest of the root it chained to
	LogIndex       int64     `json:"logIndex,omitempty"`
	IntegratedTime time.Time `json:"integratedTime,omitzero"`
	// Reason says why the requirement is not met; empty when OK.
	Reason string `json:"reason,omitempty"`
}

// UpstreamVerifier re-verifies, offline, the upstream image signatures the
// matched rule's images entries require, from the signed head (and, for
// the small signature blobs in the body, from the same bundle by digest).
// It is called once trust in the head is decided and before any body blob
// is handed to a consumer. It returns one check per image a rule applies
// to; an error means it could not check (not a rejection).
type UpstreamVerifier func(ctx context.Context, h *bundle.Head, rule *policy.Rule) ([]UpstreamCheck, error)

// checkUpstream applies the rule's images requirements.
func checkUpstream(ctx context.Context, opts Options, h *bundle.Head, rule *policy.Rule, rep *Report) error {
	if len(rule.Images) == 0 {
		return nil
	}
	if opts.Upstream == nil {
		return &Failure{Stage: "upstream", Err: fmt.Errorf("%w (rule %d %q lists %d images entries)", ErrUpstreamUnchecked, rule.Index, rule.Match, len(rule.Images))}
	}
	checks, err := opts.Upstream(ctx, h, rule)
	if err != nil {
		return err
	}
	rep.Upstream = checks
	var bad []string
	for _, c := range checks {
		if !c.OK {
			bad = append(bad, fmt.Sprintf("image %s (%s): %s", c.Image, c.Digest, c.Reason))
		}
	}
	if len(bad) > 0 {
		rep.Checks = append(rep.Checks, policy.Check{Name: "upstream-signatures", OK: false, Detail: fmt.Sprintf("%d of %d images lack the required upstream signature", len(bad), len(checks))})
		return &Failure{Stage: "upstream", Err: fmt.Errorf("%w: %s", ErrUpstream, strings.Join(bad, "; "))}
	}
	rep.Checks = append(rep.Checks, policy.Check{Name: "upstream-signatures", OK: true, Detail: fmt.Sprintf("%d images carry a valid upstream signature for their rule", len(checks))})
	return nil
}
