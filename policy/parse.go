package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/keys"
	"github.com/airlock-dev/airlock/internal/suggest"
)

// The policy file as written; validated into Policy.
type fileDoc struct {
	Keys    map[string]fileKey `yaml:"keys"`
	Bundles []fileRule         `yaml:"bundles"`
}

type fileKey struct {
	PublicKey string `yaml:"publicKey"`
}

type fileRule struct {
	Match          string          `yaml:"match"`
	Signers        []string        `yaml:"signers"`
	Threshold      *int            `yaml:"threshold"`
	Channel        string          `yaml:"channel"`
	MaxAge         string          `yaml:"maxAge"`
	AllowDowngrade bool            `yaml:"allowDowngrade"`
	Require        fileRequire     `yaml:"require"`
	Images         []fileImageRule `yaml:"images"`
}

type fileRequire struct {
	SBOMForEveryImage bool             `yaml:"sbomForEveryImage"`
	Platforms         []string         `yaml:"platforms"`
	Charts            fileChartRequire `yaml:"charts"`
}

var (
	keyNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?$`)
	ageRE      = regexp.MustCompile(`^([0-9]{1,6})([dhm])$`)
)

// MaxMaxAge is the largest maxAge accepted (100 years).
const MaxMaxAge = 36500 * 24 * time.Hour

// Parse parses and validates policy bytes read from path. readFile reads a
// key file; it is called with the key's path already joined with the policy
// file's directory. Rejected, before any bundle is read, with an *Error
// (wrapping ErrInvalidPolicy) naming file, line and field: YAML errors,
// unknown fields, duplicate mapping keys (so a key name listed twice), more
// than one document; no keys; a bad key name; a key file that cannot be
// read or holds a key keys.ParsePublic refuses; two names for the same key
// (same fingerprint); no rules; an empty or malformed match glob; a match
// repeated or following a "*" rule (it could never apply); no signers; an
// unknown signer name or one listed twice in a rule; a missing threshold or
// one < 1 or > len(signers); a bad channel, maxAge or platform.
func Parse(path string, data []byte, readFile func(string) ([]byte, error)) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("larger than %d bytes", MaxPolicySize)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(path, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{File: path, Msg: "empty policy (see docs/policy.md)"}
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, &Error{File: path, Line: doc.Line, Msg: "the policy must be a mapping with keys: and bundles: (see docs/policy.md)"}
	}
	if err := checkTree(path, doc); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f fileDoc
	if err := dec.Decode(&f); err != nil {
		return nil, yamlError(path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &Error{File: path, Line: extra.Line, Msg: "more than one YAML document; put the whole policy in one"}
	}
	sum := sha256.Sum256(data)
	v := &validator{path: path, doc: doc, readFile: readFile}
	p := &Policy{Path: path, Keys: map[string]*keys.PublicKey{}, Digest: "sha256:" + hex.EncodeToString(sum[:])}
	v.keys(&f, p)
	v.rules(&f, p)
	if v.err != nil {
		return nil, v.err
	}
	p.KeyNames = sortedNames(p.Keys)
	return p, nil
}

// checkTree rejects what the decoder would accept silently or slowly: YAML
// anchors, aliases and merge keys (a policy must read as it applies), keys
// that are not plain scalars, and duplicate keys in one mapping (found here
// in linear time; yaml.v3's own check is quadratic).
func checkTree(file string, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" || n.Tag == "!!merge" {
		return &Error{File: file, Line: n.Line, Msg: "YAML anchors, aliases and merge keys are not allowed in a policy; write every value out so it reads as it applies"}
	}
	if n.Kind == yaml.MappingNode {
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return &Error{File: file, Line: k.Line, Msg: "mapping keys must be plain names"}
			}
			if first, dup := seen[k.Value]; dup {
				return &Error{File: file, Line: k.Line, Msg: fmt.Sprintf("%q is already defined at line %d; each key may appear once", k.Value, first)}
			}
			seen[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := checkTree(file, c); err != nil {
			return err
		}
	}
	return nil
}

// yamlError turns a yaml.v3 error into an *Error with the line it names.
func yamlError(file string, err error) error {
	line, msg := suggest.YAMLProblem(err, fileDoc{}, "docs/policy.md")
	return &Error{File: file, Line: line, Msg: msg}
}

type validator struct {
	path     string
	doc      *yaml.Node
	readFile func(string) ([]byte, error)
	err      error
}

// fail records the first problem; at names the YAML node path of the field
// (mapping keys as strings, sequence positions as ints) to find its line.
func (v *validator) fail(field string, at []any, cause error, format string, args ...any) {
	if v.err != nil {
		return
	}
	v.err = &Error{File: v.path, Line: v.line(at), Field: field, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// line walks the YAML tree along at and returns the line of the deepest node
// found.
func (v *validator) line(at []any) int {
	n, line := v.doc, v.doc.Line
	for _, step := range at {
		switch s := step.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					next = n.Content[i+1]
					line = n.Content[i].Line
				}
			}
			if next == nil {
				return line
			}
			n = next
			if n.Line > 0 && n.Kind != yaml.MappingNode {
				line = n.Line
			}
		case int:
			if n.Kind != yaml.SequenceNode || s < 0 || s >= len(n.Content) {
				return line
			}
			n = n.Content[s]
			line = n.Line
		}
	}
	return line
}

// keyOrder returns the key names in the order the file lists them.
func (v *validator) keyOrder() []string {
	var names []string
	for i := 0; i+1 < len(v.doc.Content); i += 2 {
		if v.doc.Content[i].Value != "keys" || v.doc.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		m := v.doc.Content[i+1]
		for j := 0; j+1 < len(m.Content); j += 2 {
			names = append(names, m.Content[j].Value)
		}
	}
	return names
}

func (v *validator) keys(f *fileDoc, p *Policy) {
	if len(f.Keys) == 0 {
		v.fail("keys", []any{"keys"}, nil, "no keys: list at least one trusted public key, e.g. release: {publicKey: keys/release.pub}")
		return
	}
	byFingerprint := map[string]string{}
	order := v.keyOrder()
	if len(order) != len(f.Keys) {
		v.fail("keys", []any{"keys"}, nil, "key names must be plain, distinct strings")
		return
	}
	for _, name := range order {
		entry, ok := f.Keys[name]
		if !ok {
			v.fail("keys", []any{"keys", name}, nil, "key name %q must be a plain string", name)
			return
		}
		field := "keys." + name
		at := []any{"keys", name}
		if !keyNameRE.MatchString(name) {
			v.fail(field, at, nil, "key name %q must be letters, digits, '-' or '_' (at most 64, starting with a letter or digit)", name)
			return
		}
		if entry.PublicKey == "" {
			v.fail(field+".publicKey", append(at, "publicKey"), nil, "required: the path of a PEM public key file, relative to the policy file")
			return
		}
		file := resolve(v.path, entry.PublicKey)
		if v.readFile == nil {
			v.fail(field+".publicKey", append(at, "publicKey"), nil, "no way to read key files was given")
			return
		}
		data, err := v.readFile(file)
		if err != nil {
			v.fail(field+".publicKey", append(at, "publicKey"), err, "cannot read the key file: %v", err)
			return
		}
		k, err := keys.ParsePublic(file, data)
		if err != nil {
			v.fail(field+".publicKey", append(at, "publicKey"), err, "%v", err)
			return
		}
		if other, dup := byFingerprint[k.Fingerprint]; dup {
			v.fail(field+".publicKey", append(at, "publicKey"), nil, "keys %q and %q are the same public key (%s); list each key once, since signatures are counted per distinct key", other, name, k.Fingerprint)
			return
		}
		byFingerprint[k.Fingerprint] = name
		p.Keys[name] = k
	}
}

func (v *validator) rules(f *fileDoc, p *Policy) {
	if len(f.Bundles) == 0 {
		v.fail("bundles", []any{"bundles"}, nil, "no rules: without a bundles entry every bundle is denied; add one, e.g. - match: \"*\"")
		return
	}
	seenMatch := map[string]int{}
	catchAll := -1
	for i, fr := range f.Bundles {
		field := fmt.Sprintf("bundles[%d]", i)
		at := []any{"bundles", i}
		r := Rule{Index: i, Match: fr.Match, Channel: fr.Channel, AllowDowngrade: fr.AllowDowngrade}

		switch {
		case fr.Match == "":
			v.fail(field+".match", append(at, "match"), nil, "required: a bundle name glob such as \"payments\", \"payments-*\" or \"*\"")
		case !validGlob(fr.Match):
			v.fail(field+".match", append(at, "match"), nil, "%q is not a valid glob (path.Match syntax: *, ?, [a-z], \\ escapes)", fr.Match)
		case catchAll >= 0:
			v.fail(field+".match", append(at, "match"), nil, "follows bundles[%d] with match \"*\", which already matches every bundle, so this rule never applies; move it up", catchAll)
		}
		if j, dup := seenMatch[fr.Match]; dup && fr.Match != "" {
			v.fail(field+".match", append(at, "match"), nil, "%q repeats bundles[%d].match; the first matching rule wins, so this rule never applies", fr.Match, j)
		}
		seenMatch[fr.Match] = i
		if fr.Match == "*" && catchAll < 0 {
			catchAll = i
		}

		if len(fr.Signers) == 0 {
			v.fail(field+".signers", append(at, "signers"), nil, "required: the names of the keys whose signatures count (from keys:)")
		}
		seen := map[string]bool{}
		for j, s := range fr.Signers {
			sat := append(append([]any{}, at...), "signers", j)
			if _, ok := p.Keys[s]; !ok {
				v.fail(fmt.Sprintf("%s.signers[%d]", field, j), sat, nil, "%q is not a key name under keys: (known: %s)", s, strings.Join(sortedNames(p.Keys), ", "))
			}
			if seen[s] {
				v.fail(fmt.Sprintf("%s.signers[%d]", field, j), sat, nil, "%q is listed twice; each key counts once", s)
			}
			seen[s] = true
		}
		r.Signers = append([]string(nil), fr.Signers...)

		switch {
		case fr.Threshold == nil:
			v.fail(field+".threshold", append(at, "threshold"), nil, "required: how many distinct signers must have signed (1 to %d)", len(fr.Signers))
		case *fr.Threshold < 1:
			v.fail(field+".threshold", append(at, "threshold"), nil, "%d is below 1; at least one trusted signature is always required", *fr.Threshold)
		case *fr.Threshold > len(fr.Signers):
			v.fail(field+".threshold", append(at, "threshold"), nil, "%d exceeds the %d signers listed, so no bundle could ever pass", *fr.Threshold, len(fr.Signers))
		default:
			r.Threshold = *fr.Threshold
		}

		if fr.Channel != "" && !bundle.ValidChannel(fr.Channel) {
			v.fail(field+".channel", append(at, "channel"), nil, "%q must be letters, digits, '.', '_', '-' or '/' (at most 128, starting with a letter or digit)", fr.Channel)
		}
		if fr.MaxAge != "" {
			d, err := parseAge(fr.MaxAge)
			if err != nil {
				v.fail(field+".maxAge", append(at, "maxAge"), nil, "%q: %v", fr.MaxAge, err)
			}
			r.MaxAge = d
		}

		r.Require.SBOMForEveryImage = fr.Require.SBOMForEveryImage
		seenPlat := map[string]bool{}
		for j, pl := range fr.Require.Platforms {
			pat := append(append([]any{}, at...), "require", "platforms", j)
			pf := fmt.Sprintf("%s.require.platforms[%d]", field, j)
			if !platformRE.MatchString(pl) {
				v.fail(pf, pat, nil, "%q is not os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8)", pl)
			}
			if seenPlat[pl] {
				v.fail(pf, pat, nil, "%q is listed twice", pl)
			}
			seenPlat[pl] = true
		}
		r.Require.Platforms = append([]string(nil), fr.Require.Platforms...)
		r.Require.Charts = ChartRequire(fr.Require.Charts)
		v.imageRules(i, fr.Images, &r, p)
		p.Rules = append(p.Rules, r)
	}
}

// validGlob reports whether pattern is a well-formed path.Match pattern.
func validGlob(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}

// parseAge parses "Nd", "Nh", "Nm" or a Go duration ("36h", "90m", "1h30m").
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	if m := ageRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		unit := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute}[m[2]]
		if n > int64(MaxMaxAge/unit) {
			return 0, fmt.Errorf("longer than %d days", int64(MaxMaxAge/(24*time.Hour)))
		}
		d = time.Duration(n) * unit
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("not a duration; write Nd, Nh or Nm (30d, 12h, 90m) or a Go duration (1h30m)")
		}
	}
	switch {
	case d <= 0:
		return 0, errors.New("must be longer than zero (leave maxAge out to set no limit)")
	case d > MaxMaxAge:
		return 0, fmt.Errorf("longer than %d days", int64(MaxMaxAge/(24*time.Hour)))
	}
	return d, nil
}
