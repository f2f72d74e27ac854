package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/airlock-dev/airlock/internal/keys"
)

// MaxTrustedRootSize bounds a Sigstore trusted root file a policy names
// (1 MiB; the public-good root is about 10 KiB). Key files stay bounded by
// keys.MaxKeyFileSize when they are parsed.
const MaxTrustedRootSize = 1 << 20

// ImageRule is one bundles[].images entry: images whose reference matches
// must carry an upstream signature that satisfies it, re-verified offline
// on the isolated side from the attachments in the bundle.
type ImageRule struct {
	// Index is the 0-based position in the rule's images list.
	Index int
	// Match is a glob over the image reference as packed ("*" matches
	// within a path segment, "**" across segments).
	Match string
	// Keyless is the Sigstore identity that must have signed; nil when
	// Keys is set.
	Keyless *KeylessRule
	// Keys names policy keys, one of which must have made a cosign
	// signature over the image (a .sig tag or a cosign signature
	// referrer); PublicKeys holds them in the same order.
	Keys       []string
	PublicKeys []*keys.PublicKey

	re *regexp.Regexp
}

// KeylessRule is a keyless identity and the trusted root it chains to.
type KeylessRule struct {
	Issuer        string
	Subject       string
	SubjectRegExp string
	// TrustedRoot is the path as written in the policy; RootFile resolved.
	// Both are empty when the rule pins a root the bundle carries.
	TrustedRoot string
	RootFile    string
	// RootDigest is "sha256:<hex>" of the only trusted root this rule
	// accepts: the policy's file, or a root carried in the bundle with
	// exactly this digest (trustedRootSHA256). A bundle cannot bring
	// another.
	RootDigest string
	// Root is the trusted root file's bytes; nil when the root is taken
	// from the bundle by RootDigest.
	Root []byte
}

// Matches reports whether the image reference ref is covered by the rule.
func (r *ImageRule) Matches(ref string) bool { return r.re != nil && r.re.MatchString(ref) }

// ImageRuleFor returns the first images entry of the rule matching ref, or nil.
func (r *Rule) ImageRuleFor(ref string) *ImageRule {
	for i := range r.Images {
		if r.Images[i].Matches(ref) {
			return &r.Images[i]
		}
	}
	return nil
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// globRE turns an image glob into an anchored expression.
func globRE(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; {
		case c == '*' && i+1 < len(g) && g[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

type fileImageRule struct {
	Match   string       `yaml:"match"`
	Keyless *fileKeyless `yaml:"keyless"`
	Keys    []string     `yaml:"keys"`
}

type fileKeyless struct {
	Issuer        string `yaml:"issuer"`
	Subject       string `yaml:"subject"`
	SubjectRegExp string `yaml:"subjectRegExp"`
	TrustedRoot   string `yaml:"trustedRoot"`
	// TrustedRootSHA256 pins the root by digest: alone, the root is taken
	// from the bundle; with TrustedRoot, the file must hash to it.
	TrustedRootSHA256 string `yaml:"trustedRootSHA256"`
}

// imageRules validates bundles[i].images and reads the trusted roots.
func (v *validator) imageRules(i int, in []fileImageRule, r *Rule, p *Policy) {
	for j, fi := range in {
		field := fmt.Sprintf("bundles[%d].images[%d]", i, j)
		at := []any{"bundles", i, "images", j}
		if fi.Match == "" {
			v.fail(field+".match", append(at, "match"), nil, "required: a glob over image references, e.g. registry.k8s.io/**")
			return
		}
		re, err := globRE(fi.Match)
		if err != nil {
			v.fail(field+".match", append(at, "match"), err, "%v", err)
			return
		}
		k := fi.Keyless
		if (k == nil) == (len(fi.Keys) == 0) {
			v.fail(field+".keyless", at, nil, "give exactly one of keyless: {issuer, subject or subjectRegExp, trustedRoot} and keys: [NAME, ...]")
			return
		}
		if k == nil {
			ir := ImageRule{Index: j, Match: fi.Match, re: re}
			seen := map[string]bool{}
			for n, name := range fi.Keys {
				pk, ok := p.Keys[name]
				if !ok || seen[name] {
					v.fail(fmt.Sprintf("%s.keys[%d]", field, n), append(at, "keys", n), nil, "%q is not a key under keys:, or is listed twice", name)
					return
				}
				seen[name] = true
				ir.Keys = append(ir.Keys, name)
				ir.PublicKeys = append(ir.PublicKeys, pk)
			}
			r.Images = append(r.Images, ir)
			continue
		}
		kat := append(at, "keyless")
		switch {
		case k.Issuer == "":
			v.fail(field+".keyless.issuer", kat, nil, "required: the OIDC issuer, e.g. https://token.actions.githubusercontent.com")
			return
		case (k.Subject == "") == (k.SubjectRegExp == ""):
			v.fail(field+".keyless", kat, nil, "give exactly one of subject and subjectRegExp")
			return
		case k.TrustedRoot == "" && k.TrustedRootSHA256 == "":
			v.fail(field+".keyless.trustedRoot", kat, nil, "required: a Sigstore trusted_root.json relative to the policy file, or trustedRootSHA256 pinning one the bundle carries")
			return
		case k.TrustedRootSHA256 != "" && !digestRE.MatchString(k.TrustedRootSHA256):
			v.fail(field+".keyless.trustedRootSHA256", kat, nil, "%q is not sha256:<64 lowercase hex>", k.TrustedRootSHA256)
			return
		}
		if k.SubjectRegExp != "" {
			if _, err := regexp.Compile(k.SubjectRegExp); err != nil {
				v.fail(field+".keyless.subjectRegExp", kat, err, "%v", err)
				return
			}
		}
		if k.TrustedRoot == "" {
			r.Images = append(r.Images, ImageRule{Index: j, Match: fi.Match, re: re, Keyless: &KeylessRule{
				Issuer: k.Issuer, Subject: k.Subject, SubjectRegExp: k.SubjectRegExp, RootDigest: k.TrustedRootSHA256,
			}})
			continue
		}
		file := resolve(v.path, k.TrustedRoot)
		if v.readFile == nil {
			v.fail(field+".keyless.trustedRoot", kat, nil, "no way to read files was given")
			return
		}
		data, err := v.readFile(file)
		if err != nil {
			v.fail(field+".keyless.trustedRoot", kat, err, "cannot read the trusted root: %v", err)
			return
		}
		sum := sha256.Sum256(data)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		if k.TrustedRootSHA256 != "" && k.TrustedRootSHA256 != digest {
			v.fail(field+".keyless.trustedRootSHA256", kat, nil, "the trusted root %s hashes to %s, not the pinned %s", k.TrustedRoot, digest, k.TrustedRootSHA256)
			return
		}
		r.Images = append(r.Images, ImageRule{Index: j, Match: fi.Match, re: re, Keyless: &KeylessRule{
			Issuer: k.Issuer, Subject: k.Subject, SubjectRegExp: k.SubjectRegExp,
			TrustedRoot: k.TrustedRoot, RootFile: file, RootDigest: digest, Root: data,
		}})
	}
}
