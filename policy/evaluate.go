package policy

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// ClockSkew is how far in the future a bundle's creation time may lie
// (5 minutes), to tolerate clocks that disagree a little.
const ClockSkew = 5 * time.Minute

// Facts are what verification established about a bundle; Evaluate decides.
type Facts struct {
	Name, Version, Channel string
	Sequence               uint64
	Created, Expires       time.Time
	// Now is the one "now" of this run, passed in by the caller.
	Now time.Time
	// Verified lists the fingerprints of keys whose signature over the
	// statement verified. It may include keys the rule does not list, and the
	// same key more than once; only distinct keys of the rule count.
	Verified []string
	Images   []ImageFacts
	Charts   []ChartFacts
}

// ImageFacts describes one image of the bundle.
type ImageFacts struct {
	Ref       string
	Platforms []string // "os/arch[/variant]" offered by the image
	HasSBOM   bool
}

// Check is the outcome of one policy check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Decision records how a rule judged a bundle.
type Decision struct {
	// Rule is the rule that was applied.
	Rule *Rule
	// Signers are the policy names of the counted signers, sorted.
	Signers []string
	// Checks lists every check that ran, in order, passed or not.
	Checks []Check
}

// OK reports whether every check passed (and at least one ran).
func (d *Decision) OK() bool {
	if d == nil || len(d.Checks) == 0 {
		return false
	}
	for _, c := range d.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Evaluate applies the rule to the facts and returns the decision with every
// check it ran: match (the rule's glob covers f.Name), threshold, channel
// (when the rule sets one), notBefore (Created not more than ClockSkew after
// Now), expires (Now before Expires, and Expires after Created), maxAge (when
// set), sbomForEveryImage and platforms (when required). Only distinct
// fingerprints of keys listed in r.Signers count towards the threshold. If
// any check fails, Evaluate returns the Decision and a *Violation for the
// first failed check, wrapping ErrPolicy (and ErrThreshold for the
// threshold). It never fails open: no verified signer, a zero time, an
// expiry not after creation, or a rule with threshold < 1 all fail.
func (r *Rule) Evaluate(p *Policy, f Facts) (*Decision, error) {
	if r == nil || p == nil {
		return nil, &Violation{Check: CheckMatch, Detail: "no policy rule was given"}
	}
	d := &Decision{Rule: r}
	add := func(name string, ok bool, format string, args ...any) {
		d.Checks = append(d.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}

	ok, err := path.Match(r.Match, f.Name)
	add(CheckMatch, err == nil && ok, "bundle %q against bundles[%d].match %q", f.Name, r.Index, r.Match)

	d.Signers = countSigners(p, r, f.Verified)
	var missing []string
	for _, s := range r.Signers {
		if !slices.Contains(d.Signers, s) {
			missing = append(missing, s)
		}
	}
	switch {
	case r.Threshold < 1:
		add(CheckThreshold, false, "the rule's threshold %d is below 1", r.Threshold)
	case len(d.Signers) >= r.Threshold:
		add(CheckThreshold, true, "%d of %d required distinct signers: %s", len(d.Signers), r.Threshold, strings.Join(d.Signers, ", "))
	default:
		add(CheckThreshold, false, "%d of %d required distinct signers (signed: %s; not signed: %s)", len(d.Signers), r.Threshold, joinOr(d.Signers, "none"), joinOr(missing, "none"))
	}

	if r.Channel != "" {
		add(CheckChannel, f.Channel == r.Channel, "bundle channel %q, policy requires %q", f.Channel, r.Channel)
	}

	now := f.Now
	switch {
	case now.IsZero():
		add(CheckNotBefore, false, "no current time was given")
	case f.Created.IsZero():
		add(CheckNotBefore, false, "the bundle has no creation time")
	case f.Created.After(now.Add(ClockSkew)):
		add(CheckNotBefore, false, "created %s, more than %s after now (%s); check the clocks of this machine and the packing machine", stamp(f.Created), ClockSkew, stamp(now))
	default:
		add(CheckNotBefore, true, "created %s", stamp(f.Created))
	}

	switch {
	case now.IsZero():
		add(CheckExpires, false, "no current time was given")
	case f.Expires.IsZero():
		add(CheckExpires, false, "the bundle has no expiry")
	case !f.Expires.After(f.Created):
		add(CheckExpires, false, "expiry %s is not after creation %s", stamp(f.Expires), stamp(f.Created))
	case !now.Before(f.Expires):
		add(CheckExpires, false, "expired %s (now %s)", stamp(f.Expires), stamp(now))
	default:
		add(CheckExpires, true, "expires %s", stamp(f.Expires))
	}

	if r.MaxAge > 0 {
		switch {
		case now.IsZero() || f.Created.IsZero():
			add(CheckMaxAge, false, "creation time or current time missing")
		case now.Sub(f.Created) > r.MaxAge:
			add(CheckMaxAge, false, "created %s, %s ago; the policy accepts at most %s", stamp(f.Created), now.Sub(f.Created).Round(time.Second), r.MaxAge)
		default:
			add(CheckMaxAge, true, "created %s ago, at most %s allowed", now.Sub(f.Created).Round(time.Second), r.MaxAge)
		}
	}

	if r.Require.SBOMForEveryImage {
		var without []string
		for _, im := range f.Images {
			if !im.HasSBOM {
				without = append(without, im.Ref)
			}
		}
		if len(without) == 0 {
			add(CheckSBOM, true, "all %d images have an SBOM", len(f.Images))
		} else {
			add(CheckSBOM, false, "%d of %d images have no SBOM: %s", len(without), len(f.Images), strings.Join(without, ", "))
		}
	}

	if len(r.Require.Platforms) > 0 {
		var gaps []string
		for _, im := range f.Images {
			var lacking []string
			for _, want := range r.Require.Platforms {
				if !slices.Contains(im.Platforms, want) {
					lacking = append(lacking, want)
				}
			}
			if len(lacking) > 0 {
				gaps = append(gaps, fmt.Sprintf("%s lacks %s", im.Ref, strings.Join(lacking, ", ")))
			}
		}
		if len(gaps) == 0 {
			add(CheckPlatforms, true, "all %d images offer %s", len(f.Images), strings.Join(r.Require.Platforms, ", "))
		} else {
			add(CheckPlatforms, false, "%s", strings.Join(gaps, "; "))
		}
	}

	evaluateCharts(r.Require.Charts, f.Charts, add)

	for _, c := range d.Checks {
		if !c.OK {
			return d, &Violation{Check: c.Name, Detail: c.Detail}
		}
	}
	return d, nil
}

// countSigners returns the sorted policy names of the distinct keys in
// verified that the rule lists. A key is counted once however often its
// fingerprint appears, and under one name only.
func countSigners(p *Policy, r *Rule, verified []string) []string {
	seenKey, seenName := map[string]bool{}, map[string]bool{}
	var names []string
	for _, fp := range verified {
		if seenKey[fp] {
			continue
		}
		seenKey[fp] = true
		name := p.KeyName(fp)
		if name == "" || seenName[name] || !slices.Contains(r.Signers, name) {
			continue
		}
		seenName[name] = true
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func joinOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return strings.Join(s, ", ")
}
