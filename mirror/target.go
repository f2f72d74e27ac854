package mirror

import (
	"fmt"
	"path"
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

// placement is where one artifact goes and under which tag.
type placement struct {
	repo name.Repository
	tag  string // "" to push by digest only
	// source names the artifact for reports: the image ref as written, or
	// "model NAME", or the attachment's tag/artifact type and subject.
	source string
}

// place turns a location of the bundle (bundle.Head.Locations, the one
// naming rule shared with airlock serve --bundle) into a repository under
// the target.
func (t Target) place(loc bundle.Location) (placement, error) {
	repo, err := t.repo(loc.Repo)
	if err != nil {
		return placement{}, fmt.Errorf("%s: target repository: %w", loc.Source, err)
	}
	return placement{repo: repo, tag: loc.Tag, source: loc.Source}, nil
}
