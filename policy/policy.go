package policy

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/airlock-dev/airlock/internal/keys"
)

// MaxPolicySize bounds the policy file (1 MiB).
const MaxPolicySize = 1 << 20

// Policy is a parsed, validated trust policy.
type Policy struct {
	// Path is the file the policy was read from; key paths resolve against
	// its directory.
	Path string
	// Keys maps each key name to its public key. No two names share a key.
	Keys map[string]*keys.PublicKey
	// KeyNames lists the names in Keys, sorted.
	KeyNames []string
	// Rules are the bundles entries in file order; the first match wins.
	Rules []Rule
	// Digest is "sha256:" + hex of the policy file bytes, for reports.
	Digest string
}

// Rule is one bundles entry.
type Rule struct {
	// Index is the 0-based position of the rule in bundles.
	Index int
	// Match is a path.Match glob over the bundle name; "*" matches every name.
	Match string
	// Signers names the keys whose signatures count for this rule.
	Signers []string
	// Threshold is how many distinct keys of Signers must have signed (>= 1).
	Threshold int
	// Channel, when not empty, must equal the statement's channel exactly.
	Channel string
	// MaxAge, when > 0, is how long after its creation a bundle is accepted.
	MaxAge time.Duration
	// AllowDowngrade lets `airlock install --allow-downgrade` accept a
	// bundle whose signed sequence is lower than the highest accepted for
	// its name; without both, a lower sequence is refused. Default false.
	AllowDowngrade bool
	// Require lists content requirements; the zero value requires nothing.
	Require Require
	// Images require upstream signatures on the images whose reference
	// matches; the first matching entry applies. Empty requires none.
	Images []ImageRule
}

// Require lists what a bundle's content must satisfy.
type Require struct {
	// SBOMForEveryImage requires an SBOM for each image. Default false.
	SBOMForEveryImage bool
	// Platforms ("os/arch[/variant]") must be offered by every image.
	// Charts are not images: it does not apply to them.
	Platforms []string
	// Charts lists what every Helm chart of the bundle must carry.
	Charts ChartRequire
}

// Load reads the policy file at path (at most MaxPolicySize bytes) and the
// key files it names (at most keys.MaxKeyFileSize bytes each) and parses it.
// A policy or key file that group or others may write is refused with a
// *PermissionError (see LoadWith to override).
func Load(path string) (*Policy, error) { return LoadWith(path, LoadOptions{}) }

// Match returns the first rule whose glob matches bundleName. When none does,
// the bundle is denied: the error is a *Violation wrapping ErrNoRule and
// ErrPolicy that names the bundle.
func (p *Policy) Match(bundleName string) (*Rule, error) {
	if p != nil {
		for i := range p.Rules {
			if ok, err := path.Match(p.Rules[i].Match, bundleName); err == nil && ok {
				return &p.Rules[i], nil
			}
		}
	}
	file := "the policy"
	if p != nil {
		file = p.Path
	}
	return nil, &Violation{Check: CheckMatch, Detail: fmt.Sprintf("no rule in %s matches bundle %q (bundles are denied by default; add a bundles entry whose match covers it)", file, bundleName)}
}

// KeyName returns the policy's name for the key with this fingerprint, or ""
// if the policy does not list it.
func (p *Policy) KeyName(fingerprint string) string {
	if p == nil {
		return ""
	}
	for _, name := range sortedNames(p.Keys) {
		if k := p.Keys[name]; k != nil && k.Fingerprint == fingerprint {
			return name
		}
	}
	return ""
}

// resolve joins a key path with the policy file's directory.
func resolve(policyPath, p string) string {
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(policyPath), p)
}

func sortedNames(m map[string]*keys.PublicKey) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
