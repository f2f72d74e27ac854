package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/keys"
)

func TestEvaluate(t *testing.T) {
	t.Parallel()
	p := loadFixture(t)
	fp := func(name string) string { return p.Keys[name].Fingerprint }
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	// base passes rule 0 ("payments": 2 of release/security/ops, channel
	// prod, maxAge 30d, SBOM for every image, linux/amd64).
	base := func() Facts {
		return Facts{
			Name: "payments", Version: "1.4.2", Channel: "prod", Sequence: 7,
			Created: now.Add(-time.Hour), Expires: now.Add(30 * 24 * time.Hour), Now: now,
			Verified: []string{fp("release"), fp("security")},
			Images: []ImageFacts{
				{Ref: "registry.example/payments/api@sha256:aa", Platforms: []string{"linux/amd64", "linux/arm64"}, HasSBOM: true},
				{Ref: "registry.example/payments/worker@sha256:bb", Platforms: []string{"linux/amd64"}, HasSBOM: true},
			},
		}
	}
	tests := []struct {
		name    string
		rule    int
		change  func(*Facts)
		check   string   // failed check; "" for acceptance
		signers []string // counted signers
	}{
		{name: "threshold met", signers: []string{"release", "security"}},
		{name: "all three sign", change: func(f *Facts) { f.Verified = append(f.Verified, fp("ops")) }, signers: []string{"ops", "release", "security"}},
		{name: "threshold not met", change: func(f *Facts) { f.Verified = f.Verified[:1] }, check: CheckThreshold, signers: []string{"release"}},
		{name: "no signer", change: func(f *Facts) { f.Verified = nil }, check: CheckThreshold},
		{name: "same key twice counts once", change: func(f *Facts) { f.Verified = []string{fp("release"), fp("release"), fp("release")} }, check: CheckThreshold, signers: []string{"release"}},
		{name: "unknown key ignored", change: func(f *Facts) { f.Verified = []string{fp("release"), "sha256:" + strings.Repeat("ab", 32), ""} }, check: CheckThreshold, signers: []string{"release"}},
		{name: "key not in rule ignored", rule: 1, change: func(f *Facts) {
			f.Name = "payments-eu"
			f.Verified = []string{fp("security"), fp("ops")}
		}, check: CheckThreshold},
		{name: "rule 1 met", rule: 1, change: func(f *Facts) { f.Name = "payments-eu"; f.Verified = []string{fp("release")} }, signers: []string{"release"}},
		{name: "key not in rule does not help", rule: 2, change: func(f *Facts) {
			f.Name = "billing"
			f.Verified = []string{fp("release"), fp("ops")}
		}, check: CheckThreshold, signers: []string{"release"}},
		{name: "channel mismatch", change: func(f *Facts) { f.Channel = "staging" }, check: CheckChannel, signers: []string{"release", "security"}},
		{name: "channel missing", change: func(f *Facts) { f.Channel = "" }, check: CheckChannel, signers: []string{"release", "security"}},
		{name: "channel case differs", change: func(f *Facts) { f.Channel = "Prod" }, check: CheckChannel, signers: []string{"release", "security"}},
		{name: "no channel required", rule: 2, change: func(f *Facts) { f.Name = "billing"; f.Channel = "anything" }, signers: []string{"release", "security"}},
		{name: "expired", change: func(f *Facts) { f.Expires = now.Add(-time.Second) }, check: CheckExpires, signers: []string{"release", "security"}},
		{name: "expires exactly now", change: func(f *Facts) { f.Expires = now }, check: CheckExpires, signers: []string{"release", "security"}},
		{name: "expires before created", change: func(f *Facts) { f.Created = now.Add(-time.Hour); f.Expires = now.Add(-2 * time.Hour) }, check: CheckExpires, signers: []string{"release", "security"}},
		{name: "expires equals created", rule: 2, change: func(f *Facts) {
			f.Name = "billing"
			f.Created = now.Add(time.Minute)
			f.Expires = f.Created
		}, check: CheckExpires, signers: []string{"release", "security"}},
		{name: "no expiry", change: func(f *Facts) { f.Expires = time.Time{} }, check: CheckExpires, signers: []string{"release", "security"}},
		{name: "not yet valid", change: func(f *Facts) { f.Created = now.Add(10 * time.Minute) }, check: CheckNotBefore, signers: []string{"release", "security"}},
		{name: "within clock skew", change: func(f *Facts) { f.Created = now.Add(4 * time.Minute) }, signers: []string{"release", "security"}},
		{name: "no creation time", change: func(f *Facts) { f.Created = time.Time{} }, check: CheckNotBefore, signers: []string{"release", "security"}},
		{name: "no now", change: func(f *Facts) { f.Now = time.Time{} }, check: CheckNotBefore, signers: []string{"release", "security"}},
		{name: "maxAge exceeded", change: func(f *Facts) { f.Created = now.Add(-31 * 24 * time.Hour) }, check: CheckMaxAge, signers: []string{"release", "security"}},
		{name: "maxAge exactly", change: func(f *Facts) { f.Created = now.Add(-30 * 24 * time.Hour) }, signers: []string{"release", "security"}},
		{name: "missing SBOM", change: func(f *Facts) { f.Images[1].HasSBOM = false }, check: CheckSBOM, signers: []string{"release", "security"}},
		{name: "missing platform", change: func(f *Facts) { f.Images[1].Platforms = []string{"linux/arm64"} }, check: CheckPlatforms, signers: []string{"release", "security"}},
		{name: "image without platforms", change: func(f *Facts) { f.Images[0].Platforms = nil }, check: CheckPlatforms, signers: []string{"release", "security"}},
		{name: "no images", change: func(f *Facts) { f.Images = nil }, signers: []string{"release", "security"}},
		{name: "rule does not match name", change: func(f *Facts) { f.Name = "billing" }, check: CheckMatch, signers: []string{"release", "security"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := base()
			f.Images = append([]ImageFacts(nil), f.Images...)
			if tc.change != nil {
				tc.change(&f)
			}
			r := &p.Rules[tc.rule]
			d, err := r.Evaluate(p, f)
			if d == nil || d.Rule != r || len(d.Checks) == 0 {
				t.Fatalf("no decision: %+v, %v", d, err)
			}
			if strings.Join(d.Signers, ",") != strings.Join(tc.signers, ",") {
				t.Errorf("signers %v, want %v", d.Signers, tc.signers)
			}
			if tc.check == "" {
				if err != nil || !d.OK() {
					t.Fatalf("rejected: %v\n%+v", err, d.Checks)
				}
				return
			}
			var v *Violation
			if !errors.Is(err, ErrPolicy) || !errors.As(err, &v) || v.Check != tc.check {
				t.Fatalf("got %v, want a %s violation\n%+v", err, tc.check, d.Checks)
			}
			if errors.Is(err, ErrThreshold) != (tc.check == CheckThreshold) {
				t.Errorf("ErrThreshold wrapping wrong for %s: %v", tc.check, err)
			}
			if d.OK() {
				t.Error("Decision.OK with a failed check")
			}
			failed := false
			for _, c := range d.Checks {
				if c.Name == tc.check && !c.OK {
					failed = true
				}
			}
			if !failed {
				t.Errorf("check %s not recorded as failed: %+v", tc.check, d.Checks)
			}
			t.Log(err)
		})
	}
}

// TestEvaluateChecksRun: every configured check appears in the decision, in
// order, and unconfigured ones do not.
func TestEvaluateChecksRun(t *testing.T) {
	t.Parallel()
	p := loadFixture(t)
	now := time.Now()
	f := Facts{Name: "payments", Channel: "prod", Created: now, Expires: now.Add(time.Hour), Now: now,
		Verified: []string{p.Keys["release"].Fingerprint, p.Keys["ops"].Fingerprint}}
	d, err := p.Rules[0].Evaluate(p, f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range d.Checks {
		names = append(names, c.Name)
	}
	want := []string{CheckMatch, CheckThreshold, CheckChannel, CheckNotBefore, CheckExpires, CheckMaxAge, CheckSBOM, CheckPlatforms}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("checks %v, want %v", names, want)
	}
	f.Name = "other"
	d, err = p.Rules[2].Evaluate(p, f)
	if err == nil {
		t.Fatal("rule 2 needs release and security")
	}
	names = nil
	for _, c := range d.Checks {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "match,threshold,notBefore,expires" {
		t.Fatalf("checks of rule 2: %v", names)
	}
}

// TestEvaluateNeverFailsOpen covers rules and policies built by hand rather
// than by Parse.
func TestEvaluateNeverFailsOpen(t *testing.T) {
	t.Parallel()
	p := loadFixture(t)
	now := time.Now()
	release := p.Keys["release"]
	f := Facts{Name: "x", Created: now, Expires: now.Add(time.Hour), Now: now, Verified: []string{release.Fingerprint}}

	zero := &Rule{Match: "*", Signers: []string{"release"}, Threshold: 0}
	if _, err := zero.Evaluate(p, f); !errors.Is(err, ErrThreshold) {
		t.Fatalf("threshold 0: %v", err)
	}
	// Two names for one key: one signature still counts once.
	twin := &Policy{Keys: map[string]*keys.PublicKey{"a": release, "b": release}}
	r := &Rule{Match: "*", Signers: []string{"a", "b"}, Threshold: 2}
	d, err := r.Evaluate(twin, f)
	if !errors.Is(err, ErrThreshold) || len(d.Signers) != 1 {
		t.Fatalf("one key under two names counted as %v: %v", d.Signers, err)
	}
	var nilRule *Rule
	if _, err := nilRule.Evaluate(p, f); !errors.Is(err, ErrPolicy) {
		t.Fatalf("nil rule: %v", err)
	}
	if _, err := r.Evaluate(nil, f); !errors.Is(err, ErrPolicy) {
		t.Fatalf("nil policy: %v", err)
	}
	var nilDecision *Decision
	if nilDecision.OK() || (&Decision{}).OK() {
		t.Fatal("an empty decision is OK")
	}
}
