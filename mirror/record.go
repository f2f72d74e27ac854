package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/registryhttp"
)

// emptyJSON is the OCI empty config.
var emptyJSON = []byte("{}")

// Record is a document to attach to every mirrored image as an OCI 1.1
// referrer, such as the signed verification record of `mirror --attest`.
type Record struct {
	// Data is the document (one layer of the referrer manifest).
	Data []byte
	// MediaType is the layer's media type and the manifest's artifactType.
	MediaType string
	// Annotations are set on the referrer manifest.
	Annotations map[string]string
}

// AttachRecord pushes rec as a referrer of every image res mirrored (its
// root manifest or index): an OCI image manifest with the empty config,
// rec.Data as its one layer, artifactType rec.MediaType and the image as
// subject. Registries without the referrers API get the fallback tag
// (sha256-<hex>) index from go-containerregistry. Each referrer is read
// back by digest. It returns one Mapping (kind "record") per referrer.
// opts supplies the transport, credentials, retries and user agent, as
// for Mirror.
func AttachRecord(ctx context.Context, opts MirrorOptions, res *Result, rec Record) ([]Mapping, error) {
	if len(rec.Data) == 0 || rec.MediaType == "" {
		return nil, errors.New("mirror: empty record")
	}
	ropts, err := recordRemoteOptions(ctx, opts)
	if err != nil {
		return nil, err
	}
	var nopts []name.Option
	if opts.To.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	cfg := static.NewLayer(emptyJSON, types.MediaType(bundle.MediaTypeEmptyJSON))
	layer := static.NewLayer(rec.Data, types.MediaType(rec.MediaType))
	layerDigest := checked.Digest(rec.Data)
	out := []Mapping{}
	for _, mp := range res.Mappings {
		if mp.Kind != bundle.KindImage {
			continue
		}
		subject, err := name.NewDigest(mp.Target, nopts...)
		if err != nil {
			return out, fmt.Errorf("mirror: image %s: %w", mp.Target, err)
		}
		desc, err := remote.Head(subject, ropts...)
		if err != nil {
			return out, fmt.Errorf("%w: image %s: %w", ErrRegistry, mp.Target, err)
		}
		if desc.Digest.String() != mp.Digest {
			return out, fmt.Errorf("%w: image %s: the registry reports digest %s", ErrRegistry, mp.Target, desc.Digest)
		}
		repo := subject.Context()
		for _, l := range []v1.Layer{cfg, layer} {
			if err := remote.WriteLayer(repo, l, ropts...); err != nil {
				return out, fmt.Errorf("%w: push the record's blobs to %s: %w", ErrRegistry, repo, err)
			}
		}
		m := ocispec.Manifest{
			MediaType:    bundle.MediaTypeOCIManifest,
			ArtifactType: rec.MediaType,
			Config:       ocispec.Descriptor{MediaType: bundle.MediaTypeEmptyJSON, Digest: godigest.Digest(checked.Digest(emptyJSON)), Size: int64(len(emptyJSON))},
			Layers:       []ocispec.Descriptor{{MediaType: rec.MediaType, Digest: godigest.Digest(layerDigest), Size: int64(len(rec.Data))}},
			Subject:      &ocispec.Descriptor{MediaType: string(desc.MediaType), Digest: godigest.Digest(desc.Digest.String()), Size: desc.Size},
			Annotations:  rec.Annotations,
		}
		m.SchemaVersion = 2
		raw, err := json.Marshal(m)
		if err != nil {
			return out, err
		}
		d := checked.Digest(raw)
		ref := repo.Digest(d)
		if err := remote.Put(ref, rawManifest{raw: raw, mt: bundle.MediaTypeOCIManifest}, ropts...); err != nil {
			return out, fmt.Errorf("%w: push the record referrer of %s: %w", ErrRegistry, mp.Target, err)
		}
		got, err := remote.Get(ref, ropts...)
		if err != nil {
			return out, fmt.Errorf("%w: read back the record referrer %s: %w", ErrRegistry, ref, err)
		}
		if !bytes.Equal(got.Manifest, raw) {
			return out, fmt.Errorf("%w: the registry returned other bytes for %s", ErrRegistry, ref)
		}
		out = append(out, Mapping{Kind: "record", Source: "verification record", Target: ref.String(), Digest: d, Subject: mp.Source})
	}
	return out, nil
}

func recordRemoteOptions(ctx context.Context, opts MirrorOptions) ([]remote.Option, error) {
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	tr := opts.Transport
	if tr == nil {
		t, err := registryhttp.New(registryhttp.Options{})
		if err != nil {
			return nil, err
		}
		tr = t
	}
	retry := opts.Retry
	if retry.Steps == 0 {
		retry = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}
	}
	ro := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(tr),
		remote.WithRetryBackoff(retry), remote.WithRetryPredicate(registryhttp.Retryable)}
	if opts.UserAgent != "" {
		ro = append(ro, remote.WithUserAgent(opts.UserAgent))
	}
	return ro, nil
}
