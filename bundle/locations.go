package bundle

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Location is where an artifact of the bundle lives in a registry: where
// `airlock mirror` pushes it under its target prefix, and where `airlock
// serve --bundle` serves it. The one naming rule for both is Head.Locations.
type Location struct {
	// Artifact is the artifact's index in Manifest.Artifacts.
	Artifact int
	// Repo is the repository path under the prefix, e.g. "payments/api",
	// "models/NAME", "charts/NAME".
	Repo string
	// Tag is the tag it gets; "" for by digest only.
	Tag string
	// Source names the artifact in reports: the image reference as written,
	// "model NAME", "chart NAME VERSION", or the subject of an attachment.
	Source string
}

// LocateOptions says which naming variant to apply. The zero value is
// mirror's default.
type LocateOptions struct {
	// KeepRegistryHost puts an image under its source registry's host:
	// registry.example.com:5000/payments/api:1.4.2 goes to
	// registry.example.com_5000/payments/api:1.4.2 (default: payments/api:1.4.2).
	KeepRegistryHost bool
	// ImagesOnly leaves models out.
	ImagesOnly bool
}

// validTag is the OCI tag grammar.
var validTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ValidTag reports whether s matches the OCI tag grammar.
func ValidTag(s string) bool { return validTag.MatchString(s) }

// Locations places every artifact that goes into a registry, in manifest
// order: an image under the repository and tag of its reference (a local
// source, oci: or docker-archive:, under its name in the layout); a model
// under models/NAME tagged with the bundle version ("+" written "_"; by
// digest only when that is no valid tag); a chart under charts/NAME tagged
// with its version as Helm does; an SBOM or attachment next to the image or
// chart it is attached to, under its own tag if it has one (a cosign
// signature's sha256-HEX.sig). Files, directories, trusted roots and SBOMs
// without a subject are not placed. Two artifacts that would get the same
// repository and tag with different content are an error.
func (h *Head) Locations(o LocateOptions) ([]Location, error) {
	names := layoutNames(h.IndexBytes)
	placed := map[string]Location{} // image ref or chart source -> its location
	type tagUse struct{ digest, source string }
	tags := map[string]tagUse{}
	var out []Location
	for i, a := range h.Manifest.Artifacts {
		var loc Location
		var err error
		switch a.Info().Placement {
		case PlaceByRef:
			ln := ""
			if i < len(names) {
				ln = names[i]
			}
			loc, err = locateImage(a, ln, o.KeepRegistryHost)
			placed[a.Ref] = loc
		case PlaceModel:
			if o.ImagesOnly {
				continue
			}
			loc = locateModel(a, h.Manifest.Version)
		case PlaceChart:
			loc, err = locateChart(a)
			placed[a.Source] = loc // a chart's cosign signatures follow it
		case PlaceWithSubject:
			subject, ok := placed[a.Subject]
			if a.Subject == "" || !ok {
				continue // an SBOM without a subject stays in the bundle (install)
			}
			loc = Location{Repo: subject.Repo, Tag: a.Tag, Source: a.Subject}
		default:
			continue // files are installed, not placed in a registry
		}
		if err != nil {
			return nil, err
		}
		loc.Artifact = i
		if loc.Tag != "" {
			key := loc.Repo + ":" + loc.Tag
			if prev, ok := tags[key]; ok && prev.digest != a.Digest {
				return nil, &LocationError{Repo: loc.Repo, Tag: loc.Tag, First: prev.source, Second: loc.Source}
			}
			tags[key] = tagUse{digest: a.Digest, source: loc.Source}
		}
		out = append(out, loc)
	}
	return out, nil
}

// LocationError reports two artifacts that would share a repository and tag
// with different content.
type LocationError struct {
	Repo, Tag     string
	First, Second string
}

func (e *LocationError) Error() string {
	return fmt.Sprintf("%s and %s would both be tagged %s:%s with different content", e.First, e.Second, e.Repo, e.Tag)
}

// locateImage maps registry.example.com/payments/api:1.4.2 to payments/api
// and tag 1.4.2 (registry.example.com/payments/api with keepHost). Local
// sources (oci:, docker-archive:) use their name in the bundle's layout.
func locateImage(a Artifact, layoutName string, keepHost bool) (Location, error) {
	loc := Location{Source: a.Ref}
	if strings.HasPrefix(a.Ref, "oci:") || strings.HasPrefix(a.Ref, "docker-archive:") {
		loc.Repo, loc.Tag = splitLayoutName(layoutName)
		return loc, nil
	}
	r, err := name.ParseReference(a.Ref)
	if err != nil {
		return Location{}, fmt.Errorf("image %s: %w", a.Ref, err)
	}
	loc.Repo = r.Context().RepositoryStr()
	if keepHost {
		loc.Repo = HostPath(r.Context().RegistryStr()) + "/" + loc.Repo
	}
	if tg, ok := r.(name.Tag); ok {
		loc.Tag = tg.TagStr()
	}
	return loc, nil
}

// HostPath turns a registry host into a repository path component: lower
// case, and the port separator, which a repository path cannot contain,
// becomes "_" (registry.example.com:5000 -> registry.example.com_5000).
func HostPath(host string) string {
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

// locateModel maps a model to models/NAME, tagged with the bundle version.
func locateModel(a Artifact, version string) Location {
	tag := strings.ReplaceAll(version, "+", "_")
	if !validTag.MatchString(tag) {
		tag = ""
	}
	return Location{Repo: "models/" + a.Name, Tag: tag, Source: "model " + a.Name}
}

// locateChart maps a chart to charts/NAME, tagged with the chart version
// ("+" written "_", as Helm does), so that `helm pull
// oci://SITE/PREFIX/charts/NAME --version VERSION` finds it.
func locateChart(a Artifact) (Location, error) {
	tag := ChartTag(a.Version)
	if !validTag.MatchString(tag) {
		return Location{}, fmt.Errorf("chart %s: version %q makes no valid tag", a.Name, a.Version)
	}
	return Location{Repo: "charts/" + a.Name, Tag: tag, Source: "chart " + a.Name + " " + a.Version}, nil
}

// layoutNames returns the org.opencontainers.image.ref.name of each index
// entry, in order ("" where there is none).
func layoutNames(index []byte) []string {
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	_ = json.Unmarshal(index, &idx)
	out := make([]string, len(idx.Manifests))
	for i, e := range idx.Manifests {
		out[i] = e.Annotations[AnnotationRefName]
	}
	return out
}
