package source_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/cosign"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/sample"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/source"
)

// Media types of the hand-made SBOM referrer.
const (
	spdxMediaType  = "application/spdx+json"
	emptyMediaType = "application/vnd.oci.empty.v1+json"
	// cosignSigArtifact is the artifact type of a cosign signature pushed as
	// an OCI 1.1 referrer (--registry-referrers-mode=oci-1-1).
	cosignSigArtifact = "application/vnd.dev.cosign.artifact.sig.v1+json"
)

// rawManifest pushes exact manifest bytes with remote.Put.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

func sampleImages(t *testing.T) []sample.Image {
	t.Helper()
	imgs, err := sample.Images()
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

func repoOf(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushBlob uploads b to repo.
func pushBlob(t *testing.T, repo name.Repository, b []byte, mt types.MediaType) v1.Descriptor {
	t.Helper()
	l := static.NewLayer(b, mt)
	if err := remote.WriteLayer(repo, l, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push blob to %s: %v", repo, err)
	}
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

// putManifest pushes raw under ref (a tag or its own digest) and returns its digest.
func putManifest(t *testing.T, ref name.Reference, raw []byte, mt types.MediaType) string {
	t.Helper()
	if err := remote.Put(ref, rawManifest{raw, mt}, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("put %s: %v", ref, err)
	}
	return checked.Digest(raw)
}

// ociManifest is an OCI image manifest for pushing; Subject and
// ArtifactType make it a referrer.
type ociManifest struct {
	SchemaVersion int                `json:"schemaVersion"`
	MediaType     string             `json:"mediaType"`
	ArtifactType  string             `json:"artifactType,omitempty"`
	Config        v1.Descriptor      `json:"config"`
	Layers        []v1.Descriptor    `json:"layers"`
	Subject       *bundle.Descriptor `json:"subject,omitempty"`
	Annotations   map[string]string  `json:"annotations,omitempty"`
}

// pushReferrer pushes an SBOM-like artifact whose subject is subject, by
// digest, and returns its exact bytes. go-containerregistry updates the
// referrers tag when the registry has no Referrers API.
func pushReferrer(t *testing.T, repo name.Repository, subject bundle.Descriptor, sbom string) []byte {
	t.Helper()
	cfg := pushBlob(t, repo, []byte("{}"), emptyMediaType)
	layer := pushBlob(t, repo, []byte(sbom), spdxMediaType)
	raw, err := json.Marshal(ociManifest{
		SchemaVersion: 2,
		MediaType:     bundle.MediaTypeOCIManifest,
		ArtifactType:  spdxMediaType,
		Config:        cfg,
		Layers:        []v1.Descriptor{layer},
		Subject:       &subject,
	})
	if err != nil {
		t.Fatal(err)
	}
	putManifest(t, repo.Digest(checked.Digest(raw)), raw, types.OCIManifestSchema1)
	return raw
}

func resolve(t *testing.T, p *source.Puller, ref string) (pack.ImageSource, pack.AttachmentSource) {
	t.Helper()
	src, err := p.Resolve(t.Context(), ref)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", ref, err)
	}
	as, ok := src.(pack.AttachmentSource)
	if !ok {
		t.Fatalf("Resolve(%s) = %T, not a pack.AttachmentSource", ref, src)
	}
	return src, as
}

func attachments(t *testing.T, as pack.AttachmentSource, subjects ...bundle.Descriptor) []pack.Attachment {
	t.Helper()
	got, err := as.Attachments(t.Context(), subjects)
	if err != nil {
		t.Fatalf("Attachments: %v", err)
	}
	if got == nil {
		t.Fatalf("Attachments returned nil, want an empty list")
	}
	for _, a := range got {
		if checked.Digest(a.Raw) != a.Root.Digest || int64(len(a.Raw)) != a.Root.Size {
			t.Errorf("attachment %+v: Raw hashes to %s, %d bytes", a.Root, checked.Digest(a.Raw), len(a.Raw))
		}
	}
	return got
}

// want is an expected attachment.
type want struct {
	kind, tag, digest, artifactType string
	subject                         string
}

func checkAttachments(t *testing.T, got []pack.Attachment, wants []want) {
	t.Helper()
	var have []want
	for _, a := range got {
		have = append(have, want{a.Kind, a.Tag, a.Root.Digest, a.ArtifactType, a.Subject.Digest})
	}
	if !slices.Equal(have, wants) {
		t.Fatalf("attachments:\n got %+v\nwant %+v", have, wants)
	}
}

// tagDigest is the digest the registry serves for repo:tag.
func tagDigest(t *testing.T, repo name.Repository, tag string) string {
	t.Helper()
	d, err := remote.Head(repo.Tag(tag), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("HEAD %s:%s: %v", repo, tag, err)
	}
	return d.Digest.String()
}

func cosignTagOf(digest, suffix string) string { return strings.Replace(digest, ":", "-", 1) + suffix }

func loadVerifier(t *testing.T, path string) signature.Verifier {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifySig checks a cosign signature manifest carried for subject with
// cosignsig, reading the payload from src.
func verifySig(t *testing.T, src pack.ImageSource, raw []byte, subject string, v signature.Verifier) error {
	t.Helper()
	sigs, err := cosign.Parse(raw)
	if err != nil {
		t.Fatalf("cosign.Parse: %v", err)
	}
	if len(sigs) != 1 {
		t.Fatalf("cosign.Parse: %d signatures, want 1", len(sigs))
	}
	rc, err := src.Blob(t.Context(), bundle.Descriptor(sigs[0].Payload))
	if err != nil {
		t.Fatalf("payload blob: %v", err)
	}
	defer rc.Close()
	payload, err := checked.ReadAll(rc, sigs[0].Payload.Digest, sigs[0].Payload.Size)
	if err != nil {
		t.Fatalf("payload blob: %v", err)
	}
	return cosign.Verify(payload, sigs[0].Signature, subject, v)
}

// TestAttachmentsCosign signs sample images with the real cosign in the
// real docker-registry 2.8 (which has no Referrers API) and checks that
// registry and OCI layout sources return what cosign attached, with exact
// digests, and that cosignsig accepts the signatures.
func TestAttachmentsCosign(t *testing.T) {
	cs := testkit.NewCosign(t) // t.Setenv: not parallel
	reg := testkit.Start(t)
	imgs := sampleImages(t)
	if err := sample.Push(t.Context(), reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	p := source.NewPuller(source.PullOptions{})
	workerSrc, workerAS := resolve(t, p, reg.Host+"/demo/worker:1.0")
	worker, _ := workerSrc.Root()
	legacySrc, legacyAS := resolve(t, p, reg.Host+"/demo/legacy:1.0")
	legacy, _ := legacySrc.Root()
	apiSrc, apiAS := resolve(t, p, reg.Host+"/demo/api:1.0")
	api, apiRaw := apiSrc.Root()

	dir := cs.Dir
	sbomFile := filepath.Join(dir, "sbom.spdx.json")
	sbom := `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"worker","dataLicense":"CC0-1.0","documentNamespace":"https://example.invalid/worker","creationInfo":{"created":"2024-01-01T00:00:00Z","creators":["Tool: airlock-test"]},"packages":[]}`
	if err := os.WriteFile(sbomFile, []byte(sbom), 0o644); err != nil {
		t.Fatal(err)
	}
	workerRef := reg.Host + "/demo/worker@" + worker.Digest
	cs.MustRun(t, "generate-key-pair")
	cs.MustRun(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "-y", workerRef)
	cs.MustRun(t, "attest", "--key", "cosign.key", "--type", "spdxjson", "--predicate", sbomFile, "--tlog-upload=false", "--allow-insecure-registry", "-y", workerRef)
	cs.MustRun(t, "attach", "sbom", "--sbom", sbomFile, "--type", "spdx", "--allow-insecure-registry", workerRef)
	cs.MustRun(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "-y", reg.Host+"/demo/api@"+api.Digest)
	// cosign as an OCI 1.1 referrer: with no Referrers API, cosign (through
	// go-containerregistry) maintains the referrers tag sha256-<hex>.
	(&testkit.Cosign{Bin: cs.Bin, Dir: cs.Dir, Password: cs.Password, Env: []string{"COSIGN_EXPERIMENTAL=1"}}).MustRun(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "--registry-referrers-mode=oci-1-1", "-y", reg.Host+"/demo/legacy@"+legacy.Digest)
	v := loadVerifier(t, filepath.Join(dir, "cosign.pub"))

	workerRepo, legacyRepo, apiRepo := repoOf(t, reg.Host+"/demo/worker"), repoOf(t, reg.Host+"/demo/legacy"), repoOf(t, reg.Host+"/demo/api")
	referrerRaw := pushReferrer(t, workerRepo, worker, sbom)
	referrer := checked.Digest(referrerRaw)

	// The registry really has no Referrers API: what follows is the tag fallback.
	resp, err := http.Get("http://" + reg.Host + "/v2/demo/worker/referrers/" + worker.Digest)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET referrers answered %d; this test expects a registry without the Referrers API", resp.StatusCode)
	}

	sigTag, attTag, sbomTag := cosignTagOf(worker.Digest, ".sig"), cosignTagOf(worker.Digest, ".att"), cosignTagOf(worker.Digest, ".sbom")
	sigDigest, attDigest, sbomDigest := tagDigest(t, workerRepo, sigTag), tagDigest(t, workerRepo, attTag), tagDigest(t, workerRepo, sbomTag)

	t.Run("registry", func(t *testing.T) {
		got := attachments(t, workerAS, worker)
		checkAttachments(t, got, []want{
			{pack.AttachCosignTag, sigTag, sigDigest, "", worker.Digest},
			{pack.AttachCosignTag, attTag, attDigest, "", worker.Digest},
			{pack.AttachCosignTag, sbomTag, sbomDigest, "", worker.Digest},
			{pack.AttachReferrer, "", referrer, spdxMediaType, worker.Digest},
		})
		if !bytes.Equal(got[3].Raw, referrerRaw) {
			t.Errorf("referrer bytes differ from what was pushed")
		}
		if got[0].Root.MediaType != bundle.MediaTypeOCIManifest || got[0].Subject != worker {
			t.Errorf("signature attachment %+v", got[0])
		}
		if err := verifySig(t, workerSrc, got[0].Raw, worker.Digest, v); err != nil {
			t.Errorf("cosign.Verify(worker .sig): %v", err)
		}
		if err := verifySig(t, workerSrc, got[0].Raw, legacy.Digest, v); !errors.Is(err, cosign.ErrWrongImage) {
			t.Errorf("cosign.Verify(worker .sig for legacy) = %v, want ErrWrongImage", err)
		}
	})

	t.Run("registry referrer made by cosign", func(t *testing.T) {
		idx, err := remote.Referrers(legacyRepo.Digest(legacy.Digest), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) != 1 {
			t.Fatalf("referrers tag of legacy: %v, %+v", err, im)
		}
		got := attachments(t, legacyAS, legacy)
		checkAttachments(t, got, []want{{pack.AttachReferrer, "", im.Manifests[0].Digest.String(), cosignSigArtifact, legacy.Digest}})
		if err := verifySig(t, legacySrc, got[0].Raw, legacy.Digest, v); err != nil {
			t.Errorf("cosign.Verify(legacy referrer): %v", err)
		}
	})

	t.Run("registry index and children", func(t *testing.T) {
		im, err := v1.ParseIndexManifest(bytes.NewReader(apiRaw))
		if err != nil {
			t.Fatal(err)
		}
		subjects := []bundle.Descriptor{api}
		for _, c := range im.Manifests {
			subjects = append(subjects, bundle.Descriptor{MediaType: string(c.MediaType), Digest: c.Digest.String(), Size: c.Size})
		}
		got := attachments(t, apiAS, subjects...)
		tag := cosignTagOf(api.Digest, ".sig")
		checkAttachments(t, got, []want{{pack.AttachCosignTag, tag, tagDigest(t, apiRepo, tag), "", api.Digest}})
		if err := verifySig(t, apiSrc, got[0].Raw, api.Digest, v); err != nil {
			t.Errorf("cosign.Verify(api .sig): %v", err)
		}
		if got := attachments(t, apiAS, subjects[1:]...); len(got) != 0 {
			t.Errorf("unsigned children have attachments: %+v", got)
		}
	})

	t.Run("cosign save layout", func(t *testing.T) {
		saved := filepath.Join(dir, "saved")
		cs.MustRun(t, "save", "--allow-insecure-registry", "--dir", saved, workerRef)
		src, as := resolve(t, p, "oci:"+saved+"@"+worker.Digest)
		got := attachments(t, as, worker)
		checkAttachments(t, got, []want{
			{pack.AttachCosignTag, sigTag, sigDigest, "", worker.Digest},
			{pack.AttachCosignTag, attTag, attDigest, "", worker.Digest},
		})
		if err := verifySig(t, src, got[0].Raw, worker.Digest, v); err != nil {
			t.Errorf("cosign.Verify(saved .sig): %v", err)
		}
	})

	t.Run("copied layout", func(t *testing.T) {
		lp := filepath.Join(dir, "copied")
		if err := sample.WriteOCILayout(lp, imgs); err != nil {
			t.Fatal(err)
		}
		l, err := layout.FromPath(lp)
		if err != nil {
			t.Fatal(err)
		}
		sigImg, err := remote.Image(workerRepo.Tag(sigTag), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.AppendImage(sigImg, layout.WithAnnotations(map[string]string{sample.RefNameAnnotation: "demo/worker:" + sigTag})); err != nil {
			t.Fatal(err)
		}
		refImg, err := remote.Image(workerRepo.Digest(referrer), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.AppendImage(refImg); err != nil {
			t.Fatal(err)
		}
		src, as := resolve(t, p, "oci:"+lp+":demo/worker:1.0")
		if root, _ := src.Root(); root != worker {
			t.Fatalf("layout root %+v, want %+v", root, worker)
		}
		got := attachments(t, as, worker)
		checkAttachments(t, got, []want{
			{pack.AttachCosignTag, sigTag, sigDigest, "", worker.Digest},
			{pack.AttachReferrer, "", referrer, spdxMediaType, worker.Digest},
		})
		if err := verifySig(t, src, got[0].Raw, worker.Digest, v); err != nil {
			t.Errorf("cosign.Verify(copied .sig): %v", err)
		}
		_, legacyLayout := resolve(t, p, "oci:"+lp+":demo/legacy:1.0")
		if got := attachments(t, legacyLayout, legacy); len(got) != 0 {
			t.Errorf("legacy in the layout has attachments: %+v", got)
		}
	})
}

// breakable is a transport that can be cut: fault injection for the
// registry path.
type breakable struct {
	http.RoundTripper
	cut atomic.Bool
}

func (b *breakable) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.cut.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("test: cable cut")}
	}
	return b.RoundTripper.RoundTrip(r)
}

// TestAttachmentsRefused feeds the registry source inconsistent or hostile
// attachments through go-containerregistry's in-process registry, which
// like distribution 2.8 has no Referrers API, so the referrers tag is
// whatever was pushed there.
func TestAttachmentsRefused(t *testing.T) {
	t.Parallel()
	imgs := sampleImages(t)
	worker := imgs[1]
	workerDigest, err := worker.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	other := imgs[2]
	otherDigest, err := other.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	sigTag := cosignTagOf(workerDigest.String(), ".sig")
	fallbackTag := cosignTagOf(workerDigest.String(), "")

	// index is an OCI index listing descriptors, as a referrers tag does.
	index := func(t *testing.T, ds ...v1.Descriptor) []byte {
		b, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	artifact := func(t *testing.T, repo name.Repository, subject *bundle.Descriptor, pad int) []byte {
		cfg := pushBlob(t, repo, []byte("{}"), emptyMediaType)
		m := ociManifest{SchemaVersion: 2, MediaType: bundle.MediaTypeOCIManifest, ArtifactType: spdxMediaType, Config: cfg, Layers: []v1.Descriptor{cfg}, Subject: subject}
		if pad > 0 {
			m.Annotations = map[string]string{"pad": strings.Repeat("x", pad)}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	descOf := func(raw []byte) v1.Descriptor {
		h, _ := v1.NewHash(checked.Digest(raw))
		return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: int64(len(raw)), ArtifactType: spdxMediaType}
	}

	cases := []struct {
		name  string
		setup func(t *testing.T, repo name.Repository, subject bundle.Descriptor)
		want  error // nil: no error and no attachments
	}{
		{"nothing attached", func(*testing.T, name.Repository, bundle.Descriptor) {}, nil},
		{"oversized signature manifest", func(t *testing.T, repo name.Repository, _ bundle.Descriptor) {
			putManifest(t, repo.Tag(sigTag), artifact(t, repo, nil, bundle.MaxManifestSize), types.OCIManifestSchema1)
		}, source.ErrBadAttachment},
		{"signature tag of another media type", func(t *testing.T, repo name.Repository, _ bundle.Descriptor) {
			b := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}`)
			putManifest(t, repo.Tag(sigTag), b, "application/vnd.oci.artifact.manifest.v1+json")
		}, source.ErrBadAttachment},
		{"signature tag with duplicate keys", func(t *testing.T, repo name.Repository, _ bundle.Descriptor) {
			b := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[],"layers":[]}`)
			putManifest(t, repo.Tag(sigTag), b, types.OCIManifestSchema1)
		}, source.ErrBadAttachment},
		{"referrer of another image", func(t *testing.T, repo name.Repository, _ bundle.Descriptor) {
			od := bundle.Descriptor{MediaType: bundle.MediaTypeOCIManifest, Digest: otherDigest.String(), Size: 1}
			raw := artifact(t, repo, &od, 0)
			putManifest(t, repo.Digest(checked.Digest(raw)), raw, types.OCIManifestSchema1)
			putManifest(t, repo.Tag(fallbackTag), index(t, descOf(raw)), types.OCIImageIndex)
		}, source.ErrBadAttachment},
		{"referrer listed with a wrong size", func(t *testing.T, repo name.Repository, subject bundle.Descriptor) {
			raw := artifact(t, repo, &subject, 0)
			putManifest(t, repo.Digest(checked.Digest(raw)), raw, types.OCIManifestSchema1)
			d := descOf(raw)
			d.Size++
			putManifest(t, repo.Tag(fallbackTag), index(t, d), types.OCIImageIndex)
		}, source.ErrBadAttachment},
		{"referrer listed as too large", func(t *testing.T, repo name.Repository, subject bundle.Descriptor) {
			raw := artifact(t, repo, &subject, 0)
			putManifest(t, repo.Digest(checked.Digest(raw)), raw, types.OCIManifestSchema1)
			d := descOf(raw)
			d.Size = bundle.MaxManifestSize + 1
			putManifest(t, repo.Tag(fallbackTag), index(t, d), types.OCIImageIndex)
		}, source.ErrBadAttachment},
		{"too many referrers", func(t *testing.T, repo name.Repository, subject bundle.Descriptor) {
			var ds []v1.Descriptor
			for i := range source.MaxAttachments + 1 {
				raw := artifact(t, repo, &subject, i+1)
				putManifest(t, repo.Digest(checked.Digest(raw)), raw, types.OCIManifestSchema1)
				ds = append(ds, descOf(raw))
			}
			putManifest(t, repo.Tag(fallbackTag), index(t, ds...), types.OCIImageIndex)
		}, source.ErrTooManyAttachments},
		{"listed referrer that is gone", func(t *testing.T, repo name.Repository, subject bundle.Descriptor) {
			raw := artifact(t, repo, &subject, 0)
			ref := repo.Digest(checked.Digest(raw))
			putManifest(t, ref, raw, types.OCIManifestSchema1)
			putManifest(t, repo.Tag(fallbackTag), index(t, descOf(raw)), types.OCIImageIndex)
			if err := remote.Delete(ref, remote.WithContext(t.Context())); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"referrer of a media type airlock does not carry", func(t *testing.T, repo name.Repository, subject bundle.Descriptor) {
			d := descOf(artifact(t, repo, &subject, 0))
			d.MediaType = "application/vnd.oci.artifact.manifest.v1+json"
			putManifest(t, repo.Tag(fallbackTag), index(t, d), types.OCIImageIndex)
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reg := testkit.StartInProcess(t)
			if err := sample.Push(t.Context(), reg.Host, []sample.Image{worker}); err != nil {
				t.Fatal(err)
			}
			repo := repoOf(t, reg.Host+"/"+worker.Repo)
			src, as := resolve(t, source.NewPuller(source.PullOptions{}), reg.Host+"/"+worker.Ref())
			subject, _ := src.Root()
			c.setup(t, repo, subject)
			got, err := as.Attachments(t.Context(), []bundle.Descriptor{subject})
			if c.want == nil {
				if err != nil || got == nil || len(got) != 0 {
					t.Fatalf("Attachments = %+v, %v; want an empty list", got, err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Attachments = %v, want %v", err, c.want)
			}
			var ae *source.AttachmentError
			if !errors.As(err, &ae) || ae.Subject != subject.Digest {
				t.Fatalf("Attachments = %#v, want an *AttachmentError for %s", err, subject.Digest)
			}
		})
	}
}

// TestAttachmentsRegistryErrors: a registry failing after Resolve, a
// cancelled context and an invalid subject are errors, never "nothing
// attached".
func TestAttachmentsRegistryErrors(t *testing.T) {
	t.Parallel()
	reg := testkit.StartInProcess(t)
	imgs := sampleImages(t)
	if err := sample.Push(t.Context(), reg.Host, imgs[1:2]); err != nil {
		t.Fatal(err)
	}
	tr := &breakable{RoundTripper: remote.DefaultTransport}
	src, as := resolve(t, source.NewPuller(source.PullOptions{Transport: tr}), reg.Host+"/"+imgs[1].Ref())
	subject, _ := src.Root()

	t.Run("invalid subject", func(t *testing.T) {
		_, err := as.Attachments(t.Context(), []bundle.Descriptor{{Digest: "sha256:../../x"}})
		if !errors.Is(err, checked.ErrUnsupportedDigest) {
			t.Fatalf("Attachments = %v, want ErrUnsupportedDigest", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := as.Attachments(ctx, []bundle.Descriptor{subject})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Attachments = %v, want context.Canceled", err)
		}
	})
	t.Run("no subjects", func(t *testing.T) {
		got, err := as.Attachments(t.Context(), nil)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("Attachments = %+v, %v; want an empty list", got, err)
		}
	})
	t.Run("registry gone", func(t *testing.T) {
		tr.cut.Store(true)
		_, err := as.Attachments(t.Context(), []bundle.Descriptor{subject})
		if !errors.Is(err, source.ErrUnreachable) {
			t.Fatalf("Attachments = %v, want ErrUnreachable", err)
		}
	})
}

// TestLayoutAttachments covers the OCI layout source without a registry:
// what it finds by ref.name and by subject, and what it refuses.
func TestLayoutAttachments(t *testing.T) {
	t.Parallel()
	imgs := sampleImages(t)
	workerDigest, err := imgs[1].Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	sigTag := cosignTagOf(workerDigest.String(), ".sig")
	cfg := []byte("{}")
	cfgDesc := v1.Descriptor{MediaType: emptyMediaType, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(checked.Digest(cfg), "sha256:")}, Size: 2}
	manifest := func(t *testing.T, subject *bundle.Descriptor, note string) []byte {
		b, err := json.Marshal(ociManifest{SchemaVersion: 2, MediaType: bundle.MediaTypeOCIManifest, ArtifactType: spdxMediaType, Config: cfgDesc, Layers: []v1.Descriptor{cfgDesc}, Subject: subject, Annotations: map[string]string{"note": note}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// add writes raw as a blob and lists it in index.json with annotations;
	// stored replaces the blob's content on disk (a corrupted layout).
	add := func(t *testing.T, l layout.Path, raw, stored []byte, ann map[string]string) string {
		h, err := v1.NewHash(checked.Digest(raw))
		if err != nil {
			t.Fatal(err)
		}
		if stored == nil {
			stored = raw
		}
		if err := l.WriteBlob(h, io.NopCloser(bytes.NewReader(stored))); err != nil {
			t.Fatal(err)
		}
		if err := l.AppendDescriptor(v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: int64(len(raw)), Annotations: ann}); err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	tagged := func(tag string) map[string]string { return map[string]string{sample.RefNameAnnotation: tag} }

	cases := []struct {
		name  string
		setup func(t *testing.T, l layout.Path, subject bundle.Descriptor) []want
		err   error
	}{
		{"nothing attached", func(*testing.T, layout.Path, bundle.Descriptor) []want { return nil }, nil},
		{"tag and referrers", func(t *testing.T, l layout.Path, subject bundle.Descriptor) []want {
			sig := add(t, l, manifest(t, nil, "sig"), nil, tagged("demo/worker:"+sigTag))
			bare := add(t, l, manifest(t, nil, "att"), nil, tagged(cosignTagOf(subject.Digest, ".att")))
			r1 := add(t, l, manifest(t, &subject, "r1"), nil, nil)
			r2 := add(t, l, manifest(t, &subject, "r2"), nil, tagged("sbom"))
			add(t, l, manifest(t, &bundle.Descriptor{MediaType: bundle.MediaTypeOCIManifest, Digest: "sha256:" + strings.Repeat("0", 64), Size: 1}, "other"), nil, nil)
			add(t, l, manifest(t, nil, "not a tag"), nil, tagged("demo/worker:x"+sigTag))
			add(t, l, []byte("not json"), nil, nil)
			refs := []want{{pack.AttachReferrer, "", r1, spdxMediaType, subject.Digest}, {pack.AttachReferrer, "", r2, spdxMediaType, subject.Digest}}
			if r2 < r1 {
				refs[0], refs[1] = refs[1], refs[0]
			}
			return append([]want{
				{pack.AttachCosignTag, sigTag, sig, "", subject.Digest},
				{pack.AttachCosignTag, cosignTagOf(subject.Digest, ".att"), bare, "", subject.Digest},
			}, refs...)
		}, nil},
		{"tagged referrer returned once", func(t *testing.T, l layout.Path, subject bundle.Descriptor) []want {
			sig := add(t, l, manifest(t, &subject, "sig"), nil, tagged("demo/worker:"+sigTag))
			return []want{{pack.AttachCosignTag, sigTag, sig, "", subject.Digest}}
		}, nil},
		{"corrupted signature tag", func(t *testing.T, l layout.Path, _ bundle.Descriptor) []want {
			raw := manifest(t, nil, "sig")
			add(t, l, raw, flip(raw), tagged("demo/worker:"+sigTag))
			return nil
		}, source.ErrBadAttachment},
		{"corrupted referrer is skipped", func(t *testing.T, l layout.Path, subject bundle.Descriptor) []want {
			raw := manifest(t, &subject, "r")
			add(t, l, raw, flip(raw), nil)
			return nil
		}, nil},
		{"too many referrers", func(t *testing.T, l layout.Path, subject bundle.Descriptor) []want {
			for i := range source.MaxAttachments + 1 {
				add(t, l, manifest(t, &subject, strings.Repeat("r", i+1)), nil, nil)
			}
			return nil
		}, source.ErrTooManyAttachments},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := sample.WriteOCILayout(dir, imgs[1:2]); err != nil {
				t.Fatal(err)
			}
			l, err := layout.FromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			src, as := resolve(t, source.NewPuller(source.PullOptions{}), "oci:"+dir+"@"+workerDigest.String())
			subject, _ := src.Root()
			wants := c.setup(t, l, subject)
			if c.err != nil {
				_, err := as.Attachments(t.Context(), []bundle.Descriptor{subject})
				var ae *source.AttachmentError
				if !errors.Is(err, c.err) || !errors.As(err, &ae) {
					t.Fatalf("Attachments = %v, want an *AttachmentError wrapping %v", err, c.err)
				}
				return
			}
			checkAttachments(t, attachments(t, as, subject), wants)
		})
	}
}

// flip returns a copy of b with its last byte changed.
func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	return c
}
