package benchmark

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// Settings and targets of BenchmarkPackFromRegistry.
const (
	// packRegistryRounds is how many timed runs each path gets, alternating;
	// the fastest counts.
	packRegistryRounds = 2
	// targetPackRegistryRatio is the target for airlock pack's time over
	// crane pull + tar | zstd -T2 -3 of the same content.
	targetPackRegistryRatio = 1.1
	// targetPackRegistryRSSMB is the target for pack's peak RSS, MiB.
	targetPackRegistryRSSMB = 200
	// benchRepoPrefix is where the release's images live in the registry.
	benchRepoPrefix = "bench"
)

// BenchmarkPackFromRegistry packs the release of BenchmarkMirrorVsCrane (20
// images on shared base layers with a signature and an attestation each,
// three SBOMs, a 1 GiB model) from a docker-registry on 127.0.0.1, and
// compares it with the path without airlock: `crane pull --format oci` of
// every image into one layout, then `tar | zstd -T2 -3` of the layout and
// the model. With AIRLOCK_BASE_BIN set, a second airlock binary (say, the
// previous release) packs the same release in the same rounds, for a
// before-and-after ratio under the same load.
func BenchmarkPackFromRegistry(b *testing.B) {
	testkit.RequireTool(b, "docker-registry", "apt-get install docker-registry")
	if _, err := os.Stat(gnuTime); err != nil {
		b.Skipf("needs GNU time at %s to read peak RSS (apt-get install time)", gnuTime)
	}
	requireFree(b, 10<<30)
	crane := craneBinary(b)
	bin := need(b, "the airlock binary", fx.binary)
	base := os.Getenv("AIRLOCK_BASE_BIN")
	ctx := b.Context()
	dir := filepath.Join(fx.root, "pack-registry")
	b.Cleanup(func() { os.RemoveAll(dir) })
	src := filepath.Join(dir, "src")
	start := time.Now()
	if _, err := mirrorRelease(src, filepath.Join(dir, "src-small")); err != nil {
		b.Fatal(err)
	}
	reg := testkit.Start(b)
	refs, err := pushLayout(ctx, filepath.Join(src, "layout"), reg.Host+"/"+benchRepoPrefix)
	if err != nil {
		b.Fatal(err)
	}
	// The release as it is packed from the registry: the layout's images by
	// their registry names, the same model and SBOMs.
	spec, err := os.ReadFile(filepath.Join(src, "airlock.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	regSpec := strings.ReplaceAll(string(spec), "oci:./layout:", reg.Host+"/"+benchRepoPrefix+"/")
	if err := os.WriteFile(filepath.Join(src, "registry.yaml"), []byte(regSpec), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(src, "layout")); err != nil {
		b.Fatal(err)
	}
	b.Logf("prepared the release in %s in %.1fs: generated it and pushed %d images", reg.Host, time.Since(start).Seconds(), len(refs))

	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	bundlePath := filepath.Join(out, "release.airlock")
	peerLayout := filepath.Join(out, "peer", "layout")
	peerArchive := filepath.Join(out, "peer.tar.zst")
	prepare := func() {
		b.StopTimer()
		defer b.StartTimer()
		os.Remove(bundlePath)
		os.RemoveAll(filepath.Dir(peerLayout))
		os.Remove(peerArchive)
		syscall.Sync()
		if _, err := warm(filepath.Join(src, "model")); err != nil {
			b.Fatal(err)
		}
		if _, err := warm(reg.Dir); err != nil {
			b.Fatal(err)
		}
	}
	packWith := func(airlock string) measurement {
		prepare()
		m, err := runPeak(ctx, src, []string{sourceDateEpoch}, airlock, "pack", "-q", "-f", filepath.Join(src, "registry.yaml"), "-o", bundlePath)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	var pullM, archM measurement
	peer := func() measurement {
		prepare()
		var err error
		pullM, err = run(ctx, out, nil, crane, append(append([]string{"pull", "--format", "oci"}, refs...), peerLayout)...)
		if err != nil {
			b.Fatal(err)
		}
		archM, err = run(ctx, out, nil, "bash", "-c", `set -o pipefail; tar -C "$1" -cf - "$2" -C "$3" model | zstd -T2 -3 -q -f -o "$4"`,
			"tar-zstd", filepath.Dir(peerLayout), filepath.Base(peerLayout), src, peerArchive)
		if err != nil {
			b.Fatal(err)
		}
		return measurement{wall: pullM.wall + archM.wall, cpu: pullM.cpu + archM.cpu}
	}

	load := loadAverage()
	var ours, theirs, before []measurement
	var oursSize, theirsSize int64
	b.ResetTimer()
	for range b.N {
		ours, theirs, before = ours[:0], theirs[:0], before[:0]
		for range packRegistryRounds {
			ours = append(ours, packWith(bin))
			if oursSize, err = fileSize(bundlePath); err != nil {
				b.Fatal(err)
			}
			theirs = append(theirs, peer())
			if theirsSize, err = fileSize(peerArchive); err != nil {
				b.Fatal(err)
			}
			if base != "" {
				before = append(before, packWith(base))
			}
		}
	}
	b.StopTimer()

	o, t := fastest(ours), fastest(theirs)
	ratio := o.seconds() / t.seconds()
	peak := maxRSS(ours)
	b.ReportMetric(ratio, "ratio_vs_crane_pull_tar_zstd")
	b.ReportMetric(o.seconds(), "pack_s")
	b.ReportMetric(t.seconds(), "crane_pull_tar_zstd_s")
	b.ReportMetric(o.cpu.Seconds()/t.cpu.Seconds(), "cpu_ratio_vs_crane_pull_tar_zstd")
	b.ReportMetric(peak, "peak_rss_MB")
	b.ReportMetric(float64(oursSize)/float64(theirsSize), "size_ratio_vs_crane_pull_tar_zstd")
	b.Logf("pack from a registry, fastest of %d: airlock pack %.2fs (cpu %.2fs, peak rss %.0f MiB, out %.0f MiB) vs crane pull --format oci of %d images + tar | zstd -T2 -3 %.2fs (pull %.2fs + archive %.2fs of the last run; cpu %.2fs, out %.0f MiB): time ratio %.2f (target <= %.2f: %s), peak RSS target < %d MiB: %s; all runs: airlock %s, crane path %s; load average %s -> %s",
		packRegistryRounds, o.seconds(), o.cpu.Seconds(), peak, mib(oursSize), len(refs), t.seconds(), pullM.seconds(), archM.seconds(), t.cpu.Seconds(), mib(theirsSize),
		ratio, targetPackRegistryRatio, verdict(ratio <= targetPackRegistryRatio), targetPackRegistryRSSMB, verdict(peak < targetPackRegistryRSSMB),
		walls(ours), walls(theirs), load, loadAverage())
	if lastMirror != nil {
		// Same process, same release: pack + mirror against crane pull +
		// tar | zstd + zstd -dc | tar -x + crane push.
		e2e := (o.seconds() + lastMirror.ours) / (t.seconds() + lastMirror.crane)
		b.ReportMetric(e2e, "end_to_end_ratio_vs_crane")
		b.Logf("end to end, same run: airlock pack %.2fs + mirror %.2fs vs crane pull + tar | zstd %.2fs + unarchive and crane push %.2fs: ratio %.2f (target <= %.2f: %s)",
			o.seconds(), lastMirror.ours, t.seconds(), lastMirror.crane, e2e, targetEndToEnd, verdict(e2e <= targetEndToEnd))
	}
	if len(before) > 0 {
		bf := fastest(before)
		b.ReportMetric(bf.seconds()/t.seconds(), "base_ratio_vs_crane_pull_tar_zstd")
		b.ReportMetric(maxRSS(before), "base_peak_rss_MB")
		b.Logf("AIRLOCK_BASE_BIN %s in the same rounds: %.2fs (cpu %.2fs, peak rss %.0f MiB), ratio %.2f; all runs %s; this binary / base: time %.2f, cpu %.2f",
			base, bf.seconds(), bf.cpu.Seconds(), maxRSS(before), bf.seconds()/t.seconds(), walls(before), o.seconds()/bf.seconds(), o.cpu.Seconds()/bf.cpu.Seconds())
	}
}

// pushLayout pushes every image of the OCI layout at dir to prefix/NAME
// (NAME from its ref name, e.g. prefix/svc/app-01:1.0), the signature
// manifests under their tags, and the referrers (entries without a name) by
// digest to the repository of their subject. It returns the references of
// the images, not of their attachments.
func pushLayout(ctx context.Context, dir, prefix string) ([]string, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithJobs(4)}
	repoOf := map[v1.Hash]name.Repository{}
	var refs []string
	var referrers []v1.Descriptor
	for _, d := range im.Manifests {
		n := d.Annotations[ocispec.AnnotationRefName]
		if n == "" {
			referrers = append(referrers, d)
			continue
		}
		ref, err := name.ParseReference(prefix + "/" + n)
		if err != nil {
			return nil, err
		}
		if d.MediaType.IsIndex() {
			idx, err := ii.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			err = remote.WriteIndex(ref, idx, opts...)
		} else {
			img, err := ii.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			err = remote.Write(ref, img, opts...)
		}
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", ref, err)
		}
		repoOf[d.Digest] = ref.Context()
		if !strings.HasSuffix(n, ".sig") {
			refs = append(refs, ref.String())
		}
	}
	for _, d := range referrers {
		img, err := ii.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		if m.Subject == nil {
			continue
		}
		repo, ok := repoOf[m.Subject.Digest]
		if !ok {
			return nil, fmt.Errorf("referrer %s: subject %s is not an image of the layout", d.Digest, m.Subject.Digest)
		}
		if err := remote.Write(repo.Digest(d.Digest.String()), img, opts...); err != nil {
			return nil, fmt.Errorf("push referrer %s to %s: %w", d.Digest, repo, err)
		}
	}
	return refs, nil
}
