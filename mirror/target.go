package mirror

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/bundle"
)

// Target is where a bundle is mirrored: a registry and an optional path prefix.
type Target struct {
	Registry name.Registry
	Prefix   string // "" or a path such as "mirror/prod"
	// Insecure is true when the user asked for plain HTTP (--insecure-registry).
	Insecure bool
}

// ParseTarget reads "host[:port][/prefix]". insecure allows plain HTTP.
func ParseTarget(s string, insecure bool) (Target, error) {
	if strings.Contains(s, "://") {
		return Target{}, fmt.Errorf("%q: give the registry without a scheme, e.g. registry.site:5000/mirror (plain HTTP is chosen per host, not by a scheme)", s)
	}
	host, prefix, _ := strings.Cut(strings.TrimSuffix(s, "/"), "/")
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, append(opts, name.StrictValidation)...)
	if err != nil || host == "" {
		return Target{}, fmt.Errorf("%q: want REGISTRY[/PREFIX], e.g. registry.site:5000/mirror (%w)", s, err)
	}
	if prefix != "" {
		if _, err := name.NewRepository(host+"/"+prefix, opts...); err != nil {
			return Target{}, fmt.Errorf("%q: prefix %q is not a valid repository path: %w", s, prefix, err)
		}
	}
	return Target{Registry: reg, Prefix: prefix, Insecure: insecure}, nil
}

// repo builds a repository under the target.
func (t Target) repo(parts ...string) (name.Repository, error) {
	all := append([]string{t.Prefix}, parts...)
	p := strings.Trim(path.Join(all...), "/")
	var opts []name.Option
	if t.Registry.Scheme() == "http" {
		opts = append(opts, name.Insecure)
	}
	return name.NewRepository(t.Registry.Name()+"/"+p, opts...)
}

// validTag is the OCI tag grammar.
var validTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// placement is where one artifact goes and under which tag.
type placement struct {
	repo name.Repository
	tag  string // "" to push by digest only
	// source names the artifact for reports: the image ref as written, or
	// "model NAME", or the attachment's tag/artifact type and subject.
	source string
}

// placeImage maps an image artifact: registry.example.com/payments/api:1.4.2
// goes to PREFIX/payments/api:1.4.2 (PREFIX/registry.example.com/payments/api
// with keepHost). Local sources (oci:, docker-archive:) use their name in the
// bundle's layout.
func (t Target) placeImage(a bundle.Artifact, layoutName string, keepHost bool) (placement, error) {
	var parts []string
	tag := ""
	if strings.HasPrefix(a.Ref, "oci:") || strings.HasPrefix(a.Ref, "docker-archive:") {
		p, tg := splitLayoutName(layoutName)
		parts, tag = []string{p}, tg
	} else {
		r, err := name.ParseReference(a.Ref)
		if err != nil {
			return placement{}, fmt.Errorf("image %s: %w", a.Ref, err)
		}
		if keepHost {
			parts = append(parts, hostPath(r.Context().RegistryStr()))
		}
		parts = append(parts, r.Context().RepositoryStr())
		if tg, ok := r.(name.Tag); ok {
			tag = tg.TagStr()
		}
	}
	repo, err := t.repo(parts...)
	if err != nil {
		return placement{}, fmt.Errorf("image %s: target repository: %w", a.Ref, err)
	}
	return placement{repo: repo, tag: tag, source: a.Ref}, nil
}

// hostPath turns a registry host into a repository path component for
// --keep-registry-host: lower case, and the port separator, which a
// repository path cannot contain, becomes "_" (registry.example.com:5000 ->
// registry.example.com_5000).
func hostPath(host string) string {
	return strings.ReplaceAll(strings.ToLower(host), ":", "_")
}

// splitLayoutName splits "demo/api:1.0" or "worker@sha256:..." into a path and a tag.
func splitLayoutName(n string) (string, string) {
	if i := strings.Index(n, "@"); i >= 0 {
		return n[:i], ""
	}
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, ""
}

// placeModel maps a model to PREFIX/models/NAME, tagged with the bundle version.
func (t Target) placeModel(a bundle.Artifact, version string) (placement, error) {
	repo, err := t.repo("models", a.Name)
	if err != nil {
		return placement{}, fmt.Errorf("model %s: target repository: %w", a.Name, err)
	}
	tag := strings.ReplaceAll(version, "+", "_")
	if !validTag.MatchString(tag) {
		tag = ""
	}
	return placement{repo: repo, tag: tag, source: "model " + a.Name}, nil
}
