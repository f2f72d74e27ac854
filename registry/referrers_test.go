package registry

import (
	"github.com/airlock-dev/airlock/internal/referrer"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestServeReferrersPath(t *testing.T) {
	t.Parallel()
	const d = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	for _, tc := range []struct {
		path, name, ref string
		ok              bool
	}{
		{"/v2/demo/api/referrers/" + d, "demo/api", d, true},
		{"/v2/a/referrers/x", "a", "x", true},
		{"/v2/referrers/referrers/" + d, "referrers", d, true},
		{"/v2/a/referrers/b/manifests/1.0", "", "", false},
		{"/v2/referrers/" + d, "", "", false},
		{"/v2/a/referrers/", "", "", false},
		{"/v2/a/manifests/" + d, "", "", false},
		{"/v3/a/referrers/" + d, "", "", false},
		{"/v2/", "", "", false},
		{"", "", "", false},
	} {
		name, ref, ok := referrersPath(tc.path)
		if name != tc.name || ref != tc.ref || ok != tc.ok {
			t.Errorf("referrersPath(%q) = %q, %q, %v; want %q, %q, %v", tc.path, name, ref, ok, tc.name, tc.ref, tc.ok)
		}
	}
}

func TestServeIsManifestPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/v2/demo/api/manifests/1.0":      true,
		"/v2/a/manifests/sha256:abc":      true,
		"/v2/manifests/1.0":               false,
		"/v2/a/manifests/":                false,
		"/v2/a/blobs/sha256:abc":          false,
		"/v2/a/manifests/x/blobs/uploads": false,
		"/v1/a/manifests/1.0":             false,
	} {
		if got := isManifestPath(path); got != want {
			t.Errorf("isManifestPath(%q) = %v", path, got)
		}
	}
}

func TestServeParseReferrer(t *testing.T) {
	t.Parallel()
	const subj = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	self := digest.Digest("sha256:0000000000000000000000000000000000000000000000000000000000000000")
	for _, tc := range []struct {
		name, body, storedType string
		subject                digest.Digest
		desc                   v1.Descriptor
		bad                    bool
	}{
		{
			name:    "artifactType wins over the config type",
			body:    `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a/b","config":{"mediaType":"c/d"},"subject":{"digest":"` + subj + `"},"annotations":{"k":"v"}}`,
			subject: subj,
			desc:    v1.Descriptor{MediaType: v1.MediaTypeImageManifest, ArtifactType: "a/b", Annotations: map[string]string{"k": "v"}},
		},
		{
			name:    "config type when no artifactType",
			body:    `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"c/d"},"subject":{"digest":"` + subj + `"}}`,
			subject: subj,
			desc:    v1.Descriptor{MediaType: v1.MediaTypeImageManifest, ArtifactType: "c/d"},
		},
		{
			name:       "media type from the store when the body has none",
			body:       `{"schemaVersion":2,"config":{"mediaType":"c/d"},"subject":{"digest":"` + subj + `"}}`,
			storedType: v1.MediaTypeImageManifest,
			subject:    subj,
			desc:       v1.Descriptor{MediaType: v1.MediaTypeImageManifest, ArtifactType: "c/d"},
		},
		{
			name:    "an index has no config type",
			body:    `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"subject":{"digest":"` + subj + `"}}`,
			subject: subj,
			desc:    v1.Descriptor{MediaType: v1.MediaTypeImageIndex},
		},
		{name: "no subject", body: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`},
		{name: "unparsable subject", body: `{"subject":{"digest":"sha256:nothex"}}`},
		{name: "not JSON", body: `{`, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info, err := referrer.Parse(self, tc.storedType, []byte(tc.body))
			if tc.bad {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Subject != tc.subject {
				t.Errorf("subject %q, want %q", info.Subject, tc.subject)
			}
			if tc.subject == "" {
				return
			}
			want := tc.desc
			want.Digest, want.Size = self, int64(len(tc.body))
			got := info.Desc
			if got.MediaType != want.MediaType || got.ArtifactType != want.ArtifactType || got.Digest != want.Digest || got.Size != want.Size || len(got.Annotations) != len(want.Annotations) || got.Annotations["k"] != want.Annotations["k"] {
				t.Errorf("descriptor %+v, want %+v", got, want)
			}
			if s := referrer.SubjectOf([]byte(tc.body)); s != string(tc.subject) {
				t.Errorf("subjectOf = %q, want %q", s, tc.subject)
			}
		})
	}
	if _, err := referrer.Parse(self, "", []byte(`{"a":"`+strings.Repeat("x", maxManifestBytes)+`"}`)); err == nil {
		t.Error("an oversized manifest was parsed")
	}
}

// FuzzServeParseReferrer: no input makes the manifest readers panic, and
// both agree on the subject.
func FuzzServeParseReferrer(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a/b","config":{"mediaType":"c/d"},"subject":{"digest":"sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}}`,
		`{"subject":null}`, `{"subject":{"digest":7}}`, `{"config":[]}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	self := digest.FromString("self")
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := referrer.Parse(self, "", body)
		if err != nil {
			return
		}
		if got := referrer.SubjectOf(body); got != string(info.Subject) {
			t.Errorf("subjectOf %q, parseReferrer %q", got, info.Subject)
		}
	})
}
