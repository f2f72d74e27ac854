package pack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/safepath"
	"github.com/airlock-dev/airlock/internal/suggest"
)

// SpecFileName is the conventional name of the release description.
const SpecFileName = "airlock.yaml"

// Spec is a parsed, validated airlock.yaml: what a release contains.
type Spec struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Platforms ("os/arch[/variant]") applies to every image (and every
	// image a chart lists) without its own platforms:; empty keeps all.
	Platforms []string    `yaml:"platforms"`
	Images    []ImageSpec `yaml:"images"`
	Models    []ModelSpec `yaml:"models"`
	Files     []FileSpec  `yaml:"files"`
	Charts    []ChartSpec `yaml:"charts"`
	SBOMs     []SBOMSpec  `yaml:"sboms"`

	// Path is the file the spec was read from; sources resolve against its directory.
	Path string `yaml:"-"`
}

// ImageSpec names one image or index to carry.
type ImageSpec struct {
	// Ref is a registry reference (tag or @sha256 digest), "oci:PATH[:TAG|@DIGEST]"
	// for a local OCI image layout, or "docker-archive:PATH" for `docker save` output.
	Ref string `yaml:"ref"`
	// Platforms filters a multi-platform index ("os/arch[/variant]"); empty keeps all.
	Platforms []string `yaml:"platforms"`
	// Verify makes pack refuse the image unless a cosign signature by Key
	// covers it.
	Verify *ImageVerify `yaml:"verify"`
}

// ImageVerify names the key an upstream image must be signed with, or the
// keyless (Sigstore) identity that must have signed it.
type ImageVerify struct {
	// Key is a PEM public key file, relative to airlock.yaml.
	Key string `yaml:"key"`
	// Issuer is the OIDC issuer a keyless signature's certificate must
	// record (with Subject or SubjectRegExp, instead of Key).
	Issuer string `yaml:"issuer"`
	// Subject must equal the certificate's subject (SAN): an e-mail
	// address or a workflow URI.
	Subject string `yaml:"subject"`
	// SubjectRegExp must match the whole subject (anchored).
	SubjectRegExp string `yaml:"subjectRegExp"`
	// TrustedRoot is a Sigstore trusted_root.json, relative to airlock.yaml.
	TrustedRoot string `yaml:"trustedRoot"`
	// TrustedRootSHA256 pins TrustedRoot: "sha256:<hex>" of the file.
	TrustedRootSHA256 string `yaml:"trustedRootSHA256"`
}

// describe says what the check was, for bundle.Artifact.PackCheck.
func (v *ImageVerify) describe() string {
	if v.Keyless() {
		who := "subject " + v.Subject
		if v.Subject == "" {
			who = "subject matching " + v.SubjectRegExp
		}
		root := v.TrustedRoot
		if v.TrustedRootSHA256 != "" {
			root += " (sha256:" + strings.TrimPrefix(v.TrustedRootSHA256, "sha256:") + ")"
		}
		return "keyless signature, issuer " + v.Issuer + ", " + who + ", trusted root " + root
	}
	return "cosign signature by the key in " + v.Key
}

// Keyless reports whether the image is verified by identity, not by key.
func (v *ImageVerify) Keyless() bool {
	return v != nil && (v.Issuer != "" || v.Subject != "" || v.SubjectRegExp != "" || v.TrustedRoot != "" || v.TrustedRootSHA256 != "")
}

// ModelSpec names a model file or directory, packed as a ModelPack artifact.
type ModelSpec struct {
	Source string `yaml:"source"`
	Name   string `yaml:"name"`
	Target string `yaml:"target"`
}

// FileSpec names one file, or one directory tree, to install.
type FileSpec struct {
	Source string `yaml:"source"`
	// Target is the install path; for a directory, the directory the tree
	// is placed in (a trailing "/" is allowed).
	Target string `yaml:"target"`
	// Mode is an octal permission string such as "0640", for the file or
	// every file of a directory. Empty means 0755 when the source has any
	// execute bit and 0644 otherwise.
	Mode string `yaml:"mode"`
	// Include, when not empty, keeps only the files of a directory that
	// match one of these globs; Exclude drops files and directories that
	// match one. A glob without "/" matches a name at any depth.
	Include []string `yaml:"include"`
	Exclude []string `yaml:"exclude"`
	// FollowSymlinks carries a symbolic link inside a directory source as
	// the regular file it points to, when that file is inside the source.
	// Default false: any link is refused.
	FollowSymlinks bool `yaml:"followSymlinks"`
}

// target is the install path without a trailing "/".
func (f FileSpec) target() string { return strings.TrimSuffix(f.Target, "/") }

// SBOMSpec names one SBOM document (SPDX JSON or CycloneDX JSON).
type SBOMSpec struct {
	Source string `yaml:"source"`
	// Subject is the ref of an image in Images the SBOM describes; optional.
	Subject string `yaml:"subject"`
}

var platformRE = regexp.MustCompile(`^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?$`)

// MaxSpecSize bounds airlock.yaml.
const MaxSpecSize = 1 << 20

// LoadSpec reads and validates the release description at path.
func LoadSpec(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &SpecError{File: path, Msg: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecSize+1))
	if err != nil {
		return nil, &SpecError{File: path, Msg: err.Error()}
	}
	if len(data) > MaxSpecSize {
		return nil, &SpecError{File: path, Msg: fmt.Sprintf("larger than %d bytes", MaxSpecSize)}
	}
	return ParseSpec(path, data)
}

// ParseSpec parses airlock.yaml content strictly: unknown fields, wrong types,
// duplicate keys, several documents and invalid values are errors naming the line.
func ParseSpec(path string, data []byte) (*Spec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(path, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &SpecError{File: path, Msg: "empty document (see docs/airlock-yaml.md)"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, yamlError(path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		line := extra.Line
		return nil, &SpecError{File: path, Line: line, Msg: "more than one YAML document; put everything in one"}
	}
	s.Path = path
	v := &specValidator{path: path, root: root.Content[0]}
	v.validate(&s)
	if v.err != nil {
		return nil, v.err
	}
	return &s, nil
}

func yamlError(path string, err error) error {
	line, msg := suggest.YAMLProblem(err, Spec{}, "docs/airlock-yaml.md")
	return &SpecError{File: path, Line: line, Msg: msg}
}

type specValidator struct {
	path string
	root *yaml.Node
	err  error
}

// fail records the first problem, with the line of the field when it can be found.
func (v *specValidator) fail(field string, format string, args ...any) {
	if v.err != nil {
		return
	}
	v.err = &SpecError{File: v.path, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

// line finds the line of a field path like "images[2].ref" in the YAML tree.
func (v *specValidator) line(field string) int {
	n := v.root
	line := 0
	for _, part := range strings.Split(field, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
		}
		next := mappingValue(n, key)
		if next == nil {
			return line
		}
		n, line = next, next.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (v *specValidator) validate(s *Spec) {
	switch {
	case s.Name == "":
		v.fail("name", "required: a lowercase name like payments")
	case !bundle.ValidName(s.Name):
		v.fail("name", "%q must match [a-z0-9][a-z0-9._-]* and be at most 128 characters", s.Name)
	}
	switch {
	case s.Version == "":
		v.fail("version", "required: a semantic version like 1.4.2")
	case !bundle.ValidVersion(s.Version):
		v.fail("version", "%q is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.2, no leading v)", s.Version)
	}
	if n := len(s.Images) + len(s.Models) + len(s.Files) + len(s.Charts) + len(s.SBOMs); n == 0 {
		v.fail("images", "the release lists no images, models, files, charts or sboms")
	} else if n > bundle.MaxArtifacts {
		v.fail("images", "%d artifacts exceed the limit of %d", n, bundle.MaxArtifacts)
	}
	refs := map[string]bool{}
	for i, im := range s.Images {
		field := fmt.Sprintf("images[%d]", i)
		if err := checkImageRef(im.Ref); err != nil {
			v.fail(field+".ref", "%v", err)
		}
		if refs[im.Ref] {
			v.fail(field+".ref", "%q is listed twice", im.Ref)
		}
		refs[im.Ref] = true
		if im.Verify != nil {
			checkVerify(v, field+".verify", im.Verify)
		}
		v.platforms(field+".platforms", im.Platforms)
	}
	v.platforms("platforms", s.Platforms)
	targets := safepath.NewTargets()
	addTarget := func(field, target string) {
		if err := safepath.Check(target); err != nil {
			v.fail(field, "%v", err)
			return
		}
		if t, ok := targets.Overlapping(target); ok {
			v.fail(field, "target %q collides with target %q (one would overwrite or contain the other)", target, t)
			return
		}
		targets.Add(target)
	}
	models := map[string]bool{}
	for i, m := range s.Models {
		field := fmt.Sprintf("models[%d]", i)
		if m.Source == "" {
			v.fail(field+".source", "required: a file or directory relative to %s", SpecFileName)
		}
		if m.Name == "" || !bundle.ValidName(m.Name) {
			v.fail(field+".name", "%q must match [a-z0-9][a-z0-9._-]* and be at most 128 characters", m.Name)
		}
		if models[m.Name] {
			v.fail(field+".name", "model %q is listed twice", m.Name)
		}
		models[m.Name] = true
		addTarget(field+".target", m.Target)
	}
	for i, f := range s.Files {
		field := fmt.Sprintf("files[%d]", i)
		if f.Source == "" {
			v.fail(field+".source", "required: a file or directory relative to %s", SpecFileName)
		}
		if f.Mode != "" && !bundle.ValidMode(f.Mode) {
			v.fail(field+".mode", "%q must be an octal permission like \"0640\" (no setuid, setgid or sticky bits)", f.Mode)
		}
		v.globs(field+".include", f.Include)
		v.globs(field+".exclude", f.Exclude)
		addTarget(field+".target", f.target())
	}
	v.charts(s)
	for i, sb := range s.SBOMs {
		field := fmt.Sprintf("sboms[%d]", i)
		if sb.Source == "" {
			v.fail(field+".source", "required: an SPDX JSON or CycloneDX JSON file relative to %s", SpecFileName)
		}
		if sb.Subject != "" && !refs[sb.Subject] {
			v.fail(field+".subject", "%q is not one of the images[].ref of this file", sb.Subject)
		}
	}
}

// platforms checks a platforms: list.
func (v *specValidator) platforms(field string, list []string) {
	seen := map[string]bool{}
	for j, p := range list {
		if !platformRE.MatchString(p) {
			v.fail(fmt.Sprintf("%s[%d]", field, j), "%q is not os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8)", p)
		}
		if seen[p] {
			v.fail(fmt.Sprintf("%s[%d]", field, j), "%q is listed twice", p)
		}
		seen[p] = true
	}
}

// globs checks include/exclude patterns.
func (v *specValidator) globs(field string, list []string) {
	for j, g := range list {
		if _, err := path.Match(g, ""); err != nil || g == "" || strings.HasPrefix(g, "/") {
			v.fail(fmt.Sprintf("%s[%d]", field, j), "%q is not a glob like *.yaml or conf.d/*.conf (relative, path.Match syntax)", g)
		}
	}
}

// checkImageRef validates the syntax of an image reference in any transport.
func checkImageRef(ref string) error {
	switch {
	case ref == "":
		return errors.New("required: an image reference like registry.example.com/app:1.0")
	case strings.HasPrefix(ref, "oci:"):
		p, _, _, err := ParseOCIRef(ref)
		if err == nil && p == "" {
			err = errors.New("oci: needs a path, e.g. oci:./images/worker:1.0")
		}
		return err
	case strings.HasPrefix(ref, "docker-archive:"):
		if strings.TrimPrefix(ref, "docker-archive:") == "" {
			return errors.New("docker-archive: needs a path, e.g. docker-archive:./images/legacy.tar")
		}
		return nil
	}
	if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
		return fmt.Errorf("%q is not a valid image reference (write host/repository:tag or host/repository@sha256:...): %v", ref, err)
	}
	return nil
}

// ParseOCIRef splits "oci:PATH[:TAG|@DIGEST]" into its path and the tag or digest.
func ParseOCIRef(ref string) (path, tag, digest string, err error) {
	rest, ok := strings.CutPrefix(ref, "oci:")
	if !ok {
		return "", "", "", fmt.Errorf("%q does not start with oci:", ref)
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		path, digest = rest[:i], rest[i+1:]
		if !checked.ValidDigest(digest) {
			return "", "", "", fmt.Errorf("%q: digest must be sha256:<64 lowercase hex>", ref)
		}
		return path, "", digest, nil
	}
	// As in containers/image (skopeo), the first colon ends the path; the rest
	// names an entry of the layout (its org.opencontainers.image.ref.name),
	// which may itself contain colons and slashes, e.g. oci:./layout:demo/api:1.0.
	if i := strings.Index(rest, ":"); i >= 0 {
		path, tag = rest[:i], rest[i+1:]
		if tag == "" {
			return "", "", "", fmt.Errorf("%q: empty tag after ':'", ref)
		}
		return path, tag, "", nil
	}
	return rest, "", "", nil
}

// resolve returns a source path relative to the spec file's directory.
func (s *Spec) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(s.Path), filepath.FromSlash(p))
}

// checkVerify checks images[].verify: a key, or a keyless identity with a
// pinned trusted root, never both.
func checkVerify(v *specValidator, field string, iv *ImageVerify) {
	switch {
	case iv.Key != "" && iv.Keyless():
		v.fail(field, "give either key (a public key) or issuer/subject/trustedRoot (a keyless identity), not both")
		return
	case iv.Key == "" && !iv.Keyless():
		v.fail(field+".key", "required: a public key file (PEM) relative to %s, or a keyless identity (issuer, subject or subjectRegExp, trustedRoot, trustedRootSHA256)", SpecFileName)
		return
	case iv.Key != "":
		return
	}
	if iv.Issuer == "" {
		v.fail(field+".issuer", "required for a keyless identity: the OIDC issuer, e.g. https://token.actions.githubusercontent.com")
	}
	if (iv.Subject == "") == (iv.SubjectRegExp == "") {
		v.fail(field+".subject", "give exactly one of subject and subjectRegExp")
	}
	if iv.SubjectRegExp != "" {
		if _, err := regexp.Compile(iv.SubjectRegExp); err != nil {
			v.fail(field+".subjectRegExp", "%v", err)
		}
	}
	if iv.TrustedRoot == "" {
		v.fail(field+".trustedRoot", "required for a keyless identity: a Sigstore trusted_root.json relative to %s", SpecFileName)
	}
	if !checked.ValidDigest(iv.TrustedRootSHA256) {
		v.fail(field+".trustedRootSHA256", "required: the sha256:<64 hex> digest of the trusted root file (sha256sum prints the hex)")
	}
}
