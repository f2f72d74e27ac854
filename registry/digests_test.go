package registry_test

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/registry"
)

// regSHA512 returns the sha512 digest of b.
func regSHA512(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(sum[:])
}

// regPushBlob uploads b to repo with POST then PUT ?digest=dgst and returns
// the 201 response.
func regPushBlob(t *testing.T, host, repo, dgst string, b []byte) *http.Response {
	t.Helper()
	base := "http://" + host
	resp, body := srvDo(t, http.DefaultClient, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %d %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	loc = u.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	resp, body = srvDo(t, http.DefaultClient, http.MethodPut, loc.String(), http.Header{"Content-Type": {"application/octet-stream"}}, b)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %d %s", dgst, resp.StatusCode, body)
	}
	return resp
}

// regPutManifest PUTs body to /v2/repo/manifests/ref.
func regPutManifest(t *testing.T, host, repo, ref, mediaType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	return srvDo(t, http.DefaultClient, http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, ref),
		http.Header{"Content-Type": {mediaType}}, body)
}

// regErrorCode returns the first error code of a distribution error body.
func regErrorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an error body: %s", body)
	}
	return e.Errors[0].Code
}

// regSHA512Image pushes a config and a layer by their sha512 digests to repo
// and returns an OCI image manifest that names them by those digests.
func regSHA512Image(t *testing.T, host, repo, note string) []byte {
	t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"note":"` + note + `"}`)
	layer := []byte("layer of " + note)
	for _, b := range [][]byte{config, layer} {
		d := regSHA512(b)
		resp := regPushBlob(t, host, repo, d, b)
		if got := resp.Header.Get("Docker-Content-Digest"); got != d {
			t.Errorf("blob upload: Docker-Content-Digest %q, want %q", got, d)
		}
		if loc := resp.Header.Get("Location"); !strings.HasSuffix(loc, "/v2/"+repo+"/blobs/"+d) {
			t.Errorf("blob upload: Location %q does not name %s", loc, d)
		}
	}
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		regSHA512(config), len(config), regSHA512(layer), len(layer)))
}

// TestServeSHA512Manifest pushes blobs and a manifest by sha512 digests,
// reads them back under those names (also after a restart), and checks that
// deleting the manifest by its sha256 digest removes the sha512 name too.
func TestServeSHA512Manifest(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := srvStart(t, registry.Options{Data: data})
	const repo = "demo/sha512"
	man := regSHA512Image(t, srv.host, repo, "a")
	d512, d256 := regSHA512(man), srvSHA256(man).String()

	resp, body := regPutManifest(t, srv.host, repo, d512, "application/vnd.oci.image.manifest.v1+json", man)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest by %s: %d %s", d512, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d512 {
		t.Errorf("PUT manifest: Docker-Content-Digest %q, want %q", got, d512)
	}
	if loc := resp.Header.Get("Location"); !strings.HasSuffix(loc, "/manifests/"+d512) {
		t.Errorf("PUT manifest: Location %q", loc)
	}

	get := func(host, ref string, want int) {
		t.Helper()
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := srvDo(t, http.DefaultClient, method, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, ref),
				http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}}, nil)
			if resp.StatusCode != want {
				t.Fatalf("%s manifest %s: %d, want %d: %s", method, ref, resp.StatusCode, want, body)
			}
			if want != http.StatusOK {
				continue
			}
			if got := resp.Header.Get("Docker-Content-Digest"); got != ref {
				t.Errorf("%s manifest %s: Docker-Content-Digest %q", method, ref, got)
			}
			if method == http.MethodGet && string(body) != string(man) {
				t.Errorf("GET manifest %s: body differs", ref)
			}
		}
	}
	get(srv.host, d512, http.StatusOK)
	get(srv.host, d256, http.StatusOK)

	// The alias is on disk, in the library's layout, naming the sha256 revision.
	link := filepath.Join(data, "docker/registry/v2/repositories", repo, "_manifests/revisions/sha512", strings.TrimPrefix(d512, "sha512:"), "link")
	if b, err := os.ReadFile(link); err != nil || string(b) != d256 {
		t.Fatalf("alias link %s: %q, %v; want %s", link, b, err, d256)
	}

	srv.stop()
	srv = srvStart(t, registry.Options{Data: data})
	get(srv.host, d512, http.StatusOK)

	resp, body = srvDo(t, http.DefaultClient, http.MethodDelete, fmt.Sprintf("http://%s/v2/%s/manifests/%s", srv.host, repo, d256), nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s: %d %s", d256, resp.StatusCode, body)
	}
	get(srv.host, d512, http.StatusNotFound)
	get(srv.host, d256, http.StatusNotFound)
	if _, err := os.Stat(filepath.Dir(link)); !os.IsNotExist(err) {
		t.Errorf("alias link directory after delete: %v", err)
	}
	// The library checks an index's children through their links: a
	// leftover alias would let an index name the deleted manifest.
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`, d512, len(man)))
	resp, body = regPutManifest(t, srv.host, repo, "idx", "application/vnd.oci.image.index.v1+json", index)
	if resp.StatusCode != http.StatusBadRequest || regErrorCode(t, body) != "MANIFEST_BLOB_UNKNOWN" {
		t.Errorf("PUT index naming the deleted manifest by %s: %d %s", d512, resp.StatusCode, body)
	}
}

// TestServeManifestDeleteByAlias pushes a manifest by its sha384 and by its
// sha512 digest, reads it by each, and deletes it by its sha512 name: every
// name is gone.
func TestServeManifestDeleteByAlias(t *testing.T) {
	t.Parallel()
	srv := srvStart(t, registry.Options{Data: t.TempDir()})
	const repo = "demo/sha512-delete"
	man := regSHA512Image(t, srv.host, repo, "b")
	sum384 := sha512.Sum384(man)
	d384, d512, d256 := "sha384:"+hex.EncodeToString(sum384[:]), regSHA512(man), srvSHA256(man).String()
	for _, d := range []string{d384, d512} {
		if resp, body := regPutManifest(t, srv.host, repo, d, "application/vnd.oci.image.manifest.v1+json", man); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT by %s: %d %s", d, resp.StatusCode, body)
		}
		resp, body := srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", srv.host, repo, d),
			http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}}, nil)
		if resp.StatusCode != http.StatusOK || string(body) != string(man) || resp.Header.Get("Docker-Content-Digest") != d {
			t.Fatalf("GET by %s: %d %q %s", d, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
		}
	}
	resp, body := srvDo(t, http.DefaultClient, http.MethodDelete, fmt.Sprintf("http://%s/v2/%s/manifests/%s", srv.host, repo, d512), nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s: %d %s", d512, resp.StatusCode, body)
	}
	for _, ref := range []string{d384, d512, d256} {
		resp, body := srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", srv.host, repo, ref), nil, nil)
		if resp.StatusCode != http.StatusNotFound || regErrorCode(t, body) != "MANIFEST_UNKNOWN" {
			t.Errorf("GET %s after delete: %d %s", ref, resp.StatusCode, body)
		}
	}
	resp, body = srvDo(t, http.DefaultClient, http.MethodDelete, fmt.Sprintf("http://%s/v2/%s/manifests/%s", srv.host, repo, d384), nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE %s after delete: %d %s", d384, resp.StatusCode, body)
	}
}

// TestServeSHA512ManifestWrongDigest pushes a manifest under the sha512
// digest of other bytes: refused with DIGEST_INVALID, and nothing answers
// to that digest afterwards.
func TestServeSHA512ManifestWrongDigest(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := srvStart(t, registry.Options{Data: data})
	const repo = "demo/sha512-wrong"
	man := regSHA512Image(t, srv.host, repo, "c")
	wrong := regSHA512(append([]byte(nil), append(man, ' ')...))
	resp, body := regPutManifest(t, srv.host, repo, wrong, "application/vnd.oci.image.manifest.v1+json", man)
	if resp.StatusCode != http.StatusBadRequest || regErrorCode(t, body) != "DIGEST_INVALID" {
		t.Fatalf("PUT under a wrong digest: %d %s", resp.StatusCode, body)
	}
	resp, body = srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", srv.host, repo, wrong), nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s: %d %s", wrong, resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(data, "docker/registry/v2/repositories", repo, "_manifests")); !os.IsNotExist(err) {
		t.Errorf("a refused manifest left revisions behind: %v", err)
	}
}

// TestServeSHA512Mount mounts a blob by its sha512 digest into another
// repository; the library alone linked that name to itself, so the mounted
// blob was unknown.
func TestServeSHA512Mount(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := srvStart(t, registry.Options{Data: data})
	blob := []byte("mounted by its sha512 name")
	d := regSHA512(blob)
	regPushBlob(t, srv.host, "demo/from", d, blob)

	u := fmt.Sprintf("http://%s/v2/demo/to/blobs/uploads/?mount=%s&from=demo/from", srv.host, url.QueryEscape(d))
	resp, body := srvDo(t, http.DefaultClient, http.MethodPost, u, nil, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mount: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		t.Errorf("mount: Docker-Content-Digest %q, want %q", got, d)
	}
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		resp, body = srvDo(t, http.DefaultClient, method, fmt.Sprintf("http://%s/v2/demo/to/blobs/%s", srv.host, d), nil, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != d {
			t.Fatalf("%s mounted blob: %d %q %s", method, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
		}
		if method == http.MethodGet && string(body) != string(blob) {
			t.Errorf("GET mounted blob: %q", body)
		}
	}
	link := filepath.Join(data, "docker/registry/v2/repositories/demo/to/_layers/sha512", strings.TrimPrefix(d, "sha512:"), "link")
	if b, err := os.ReadFile(link); err != nil || string(b) != srvSHA256(blob).String() {
		t.Errorf("mounted alias link: %q, %v; want %s", b, err, srvSHA256(blob))
	}
	// A range of a blob read by its sha512 name names that digest too.
	resp, body = srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/demo/to/blobs/%s", srv.host, d), http.Header{"Range": {"bytes=0-6"}}, nil)
	if resp.StatusCode != http.StatusPartialContent || string(body) != "mounted" || resp.Header.Get("Docker-Content-Digest") != d {
		t.Errorf("range read: %d %q %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
	}
	// An unknown blob answers 404 without naming a digest it does not have.
	missing := regSHA512([]byte("never pushed"))
	resp, _ = srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/demo/to/blobs/%s", srv.host, missing), nil, nil)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Docker-Content-Digest") != "" {
		t.Errorf("missing blob: %d %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
}

// TestServeReferrersSHA512Pushed lists a referrer that was pushed by its
// sha512 digest once, not once per name.
func TestServeReferrersSHA512Pushed(t *testing.T) {
	t.Parallel()
	srv := srvStart(t, registry.Options{Data: t.TempDir()})
	const repo = "demo/referred"
	subject := regSHA512Image(t, srv.host, repo, "subject")
	subject256 := srvSHA256(subject)
	if resp, body := regPutManifest(t, srv.host, repo, subject256.String(), "application/vnd.oci.image.manifest.v1+json", subject); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT subject: %d %s", resp.StatusCode, body)
	}
	empty := []byte("{}")
	regPushBlob(t, srv.host, repo, srvSHA256(empty).String(), empty)
	ref := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom",`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[],`+
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}}`,
		srvSHA256(empty), subject256, len(subject)))
	resp, body := regPutManifest(t, srv.host, repo, regSHA512(ref), "application/vnd.oci.image.manifest.v1+json", ref)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT referrer by sha512: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("OCI-Subject"); got != subject256.String() {
		t.Errorf("PUT referrer by sha512: OCI-Subject %q, want %s", got, subject256)
	}
	_, idx := srvReferrersOf(t, srv.host, repo, subject256, "")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != srvSHA256(ref) {
		t.Fatalf("referrers: %+v, want the referrer once, as %s", idx.Manifests, srvSHA256(ref))
	}
}

// TestServeForeignLayers pushes manifests whose non-distributable layers
// were never pushed and are located by URLs: accepted with http(s) URLs,
// and those URLs are never fetched; refused with 400 MANIFEST_INVALID (not
// a 500) for any other URL.
func TestServeForeignLayers(t *testing.T) {
	t.Parallel()
	var fetched atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(origin.Close)

	srv := srvStart(t, registry.Options{Data: t.TempDir()})
	const repo = "demo/windows"
	config := []byte(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]}}`)
	regPushBlob(t, srv.host, repo, srvSHA256(config).String(), config)
	foreign := srvSHA256([]byte("a foreign layer that is never pushed"))
	manifest := func(mediaType string, urls ...string) []byte {
		u, _ := json.Marshal(urls)
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
			`"layers":[{"mediaType":%q,"digest":%q,"size":1234,"urls":%s}]}`,
			srvSHA256(config), len(config), mediaType, foreign, u))
	}
	const nd = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

	for _, u := range []string{origin.URL + "/blobs/" + foreign.String(), "HTTPS://store.example.com/layer"} {
		m := manifest(nd, u)
		resp, body := regPutManifest(t, srv.host, repo, "win", "application/vnd.oci.image.manifest.v1+json", m)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT manifest with foreign layer %s: %d %s", u, resp.StatusCode, body)
		}
		resp, body = srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/win", srv.host, repo),
			http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}}, nil)
		if resp.StatusCode != http.StatusOK || string(body) != string(m) {
			t.Fatalf("GET manifest with foreign layer: %d %s", resp.StatusCode, body)
		}
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the registry fetched a foreign layer URL %d times", n)
	}

	for name, m := range map[string][]byte{
		"ftp URL":                    manifest(nd, "ftp://store.example.com/layer"),
		"file URL":                   manifest(nd, "file:///etc/passwd"),
		"fragment":                   manifest(nd, "https://store.example.com/layer#x"),
		"one bad URL of two":         manifest(nd, "https://store.example.com/layer", "gopher://x"),
		"docker foreign without url": manifest("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
	} {
		resp, body := regPutManifest(t, srv.host, repo, "bad", "application/vnd.oci.image.manifest.v1+json", m)
		if resp.StatusCode != http.StatusBadRequest || regErrorCode(t, body) != "MANIFEST_INVALID" {
			t.Errorf("%s: %d %s, want 400 MANIFEST_INVALID", name, resp.StatusCode, body)
		}
	}
}

// TestServeMonolithicPost uploads blobs in the POST alone, by sha256 and by
// sha512 digests: 201 naming the digest; a wrong digest is refused with
// DIGEST_INVALID and stores nothing.
func TestServeMonolithicPost(t *testing.T) {
	t.Parallel()
	srv := srvStart(t, registry.Options{Data: t.TempDir()})
	const repo = "demo/post"
	post := func(dgst string, b []byte) (*http.Response, []byte) {
		u := fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", srv.host, repo, url.QueryEscape(dgst))
		return srvDo(t, http.DefaultClient, http.MethodPost, u, http.Header{"Content-Type": {"application/octet-stream"}}, b)
	}
	for _, b := range [][]byte{[]byte("posted in one request"), {}} {
		for _, d := range []string{srvSHA256(b).String(), regSHA512(b)} {
			resp, body := post(d, b)
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != d ||
				!strings.HasSuffix(resp.Header.Get("Location"), "/v2/"+repo+"/blobs/"+d) {
				t.Fatalf("POST %s: %d %q %q %s", d, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Location"), body)
			}
			resp, body = srvDo(t, http.DefaultClient, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/blobs/%s", srv.host, repo, d), nil, nil)
			if resp.StatusCode != http.StatusOK || string(body) != string(b) {
				t.Errorf("GET %s: %d %q", d, resp.StatusCode, body)
			}
		}
	}
	other := []byte("not this content")
	for _, d := range []string{srvSHA256(other).String(), regSHA512(other)} {
		resp, body := post(d, []byte("this content"))
		if resp.StatusCode != http.StatusBadRequest || regErrorCode(t, body) != "DIGEST_INVALID" {
			t.Errorf("POST under a wrong digest %s: %d %s", d, resp.StatusCode, body)
		}
		resp, _ = srvDo(t, http.DefaultClient, http.MethodHead, fmt.Sprintf("http://%s/v2/%s/blobs/%s", srv.host, repo, d), nil, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD %s after a refused POST: %d", d, resp.StatusCode)
		}
	}
}
