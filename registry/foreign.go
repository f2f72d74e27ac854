package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
)

// Non-distributable (foreign) layers.
//
// A manifest may name layers that are not pushed, only located by "urls"
// (Windows base images do this). The library accepts them when every URL
// matches its allow rule (foreignLayerURLs) and is http or https without a
// fragment; it never fetches them. A URL it refuses makes it answer 500
// with UNKNOWN, as if the server had failed. foreignURLCheck, in front of
// it, refuses such a manifest itself with 400 MANIFEST_INVALID naming the
// layer and the URL.
type foreignURLCheck struct {
	next http.Handler
}

// foreignLayerTypes are the layer media types whose URLs the library
// checks (and whose blobs it then does not require).
var foreignLayerTypes = map[string]bool{
	"application/vnd.oci.image.layer.v1.tar":                       true,
	"application/vnd.oci.image.layer.v1.tar+gzip":                  true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	dockerForeignLayer: true,
}

// dockerForeignLayer is the Docker schema 2 foreign layer type, which the
// library requires to have URLs.
const dockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

func (c foreignURLCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut || !isManifestPath(r.URL.Path) {
		c.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
	if err != nil {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeManifestInvalid.WithDetail("reading the manifest: "+err.Error()))
		return
	}
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if len(body) <= maxManifestBytes {
		if problem := foreignURLProblem(body); problem != "" {
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			_ = errcode.ServeJSON(w, errcode.ErrorCodeManifestInvalid.WithDetail(problem))
			return
		}
	}
	c.next.ServeHTTP(w, r) // larger manifests are refused by the library
}

// foreignURLProblem returns what is wrong with the first layer URL of
// manifest body that the library would refuse, or "" when there is none (or
// when body is not a manifest with layers: the library judges that).
func foreignURLProblem(body []byte) string {
	var m struct {
		Layers []struct {
			MediaType string        `json:"mediaType"`
			Digest    digest.Digest `json:"digest"`
			URLs      []string      `json:"urls"`
		} `json:"layers"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for _, l := range m.Layers {
		if !foreignLayerTypes[l.MediaType] {
			continue
		}
		if l.MediaType == dockerForeignLayer && len(l.URLs) == 0 {
			return fmt.Sprintf("layer %s: a foreign layer needs urls", l.Digest)
		}
		for _, raw := range l.URLs {
			u, err := url.Parse(raw)
			switch {
			case err != nil:
				return fmt.Sprintf("layer %s: URL %q does not parse: %v", l.Digest, raw, err)
			case u.Scheme != "http" && u.Scheme != "https", !hasHTTPPrefix(raw):
				return fmt.Sprintf("layer %s: URL %q: only http and https URLs are accepted", l.Digest, raw)
			case u.Fragment != "":
				return fmt.Sprintf("layer %s: URL %q: a URL with a fragment is not accepted", l.Digest, raw)
			}
		}
	}
	return ""
}

// hasHTTPPrefix reports whether raw matches foreignLayerURLs.
func hasHTTPPrefix(raw string) bool {
	l := strings.ToLower(raw)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}
