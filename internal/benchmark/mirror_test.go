package benchmark

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// Settings and targets of BenchmarkMirrorVsCrane.
const (
	// mirrorRounds is how many timed runs each path gets, each into a fresh
	// registry; the fastest counts. One more run of each goes through the
	// counting proxy.
	mirrorRounds = 2
	// targetMirrorRatio is the target for airlock mirror's time over the
	// time of extracting the bundle and pushing it with crane.
	targetMirrorRatio = 0.8
	// targetRepushShare is the target for the bytes a second mirror of the
	// same bundle into the same registry uploads, over the bundle's size.
	targetRepushShare = 0.01
	// craneVersion is the crane the benchmark installs when none is found;
	// go-containerregistry is already a dependency at this version.
	craneVersion = "v0.22.1"
	// parallelPushes is how many crane pushes the faster variant of the
	// peer path runs at once (airlock mirror uploads 4 blobs at once).
	parallelPushes = 4
)

// mirrorResult is the part of `airlock mirror --json` the benchmark reads.
type mirrorResult struct {
	Mappings []struct {
		Kind   string `json:"kind"`
		Target string `json:"target"`
		Digest string `json:"digest"`
	} `json:"mappings"`
	Blobs struct {
		Pushed      int   `json:"pushed"`
		Mounted     int   `json:"mounted"`
		Skipped     int   `json:"skipped"`
		BytesPushed int64 `json:"bytesPushed"`
	} `json:"blobs"`
	Manifests struct {
		Pushed  int `json:"pushed"`
		Skipped int `json:"skipped"`
	} `json:"manifests"`
	Tags int `json:"tags"`
}

// counts summarizes a mirror result for the log.
func (r mirrorResult) counts() string {
	return fmt.Sprintf("blobs %d pushed (%.0f MiB), %d mounted, %d skipped; manifests %d pushed, %d skipped; %d tags",
		r.Blobs.Pushed, mib(r.Blobs.BytesPushed), r.Blobs.Mounted, r.Blobs.Skipped, r.Manifests.Pushed, r.Manifests.Skipped, r.Tags)
}

// countingProxy is a reverse proxy on 127.0.0.1 in front of a registry that
// counts request and response body bytes.
type countingProxy struct {
	host     string
	up, down atomic.Int64
}

// startCountingProxy serves the proxy until b ends.
func startCountingProxy(b *testing.B, registryHost string) *countingProxy {
	b.Helper()
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: registryHost})
	rp.ModifyResponse = func(r *http.Response) error {
		r.Body = &countingBody{ReadCloser: r.Body, n: &p.down}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = &countingBody{ReadCloser: r.Body, n: &p.up}
		}
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// countingBody adds the bytes read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// craneBinary returns crane from $TOOLS_CACHE/bin (default
// /var/cache/airlock-ci/bin) or PATH, installing it into $TOOLS_CACHE/bin
// with go install when it is in neither. It skips b when that fails.
func craneBinary(b *testing.B) string {
	b.Helper()
	cache := os.Getenv("TOOLS_CACHE")
	if cache == "" {
		cache = "/var/cache/airlock-ci"
	}
	dir := filepath.Join(cache, "bin")
	p := filepath.Join(dir, "crane")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("crane"); err == nil {
		return p
	}
	b.Logf("crane not found in %s or PATH: installing it with GOBIN=%s go install github.com/google/go-containerregistry/cmd/crane@%s (about a minute)", dir, dir, craneVersion)
	start := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Skipf("cannot install crane into %s: %v", dir, err)
	}
	cmd := exec.CommandContext(b.Context(), "go", "install", "github.com/google/go-containerregistry/cmd/crane@"+craneVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOTOOLCHAIN=local")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Skipf("installing crane failed, so there is no reference to compare with: %v\n%s", err, msg)
	}
	b.Logf("installed crane %s into %s in %.1fs", craneVersion, dir, time.Since(start).Seconds())
	return p
}

// peerRun is what one run of the peer path cost.
type peerRun struct {
	total, extract, push measurement
	pushed               int
	skipped              []string      // entries crane could not push, with the reason
	regCPU               time.Duration // CPU the registry used meanwhile
}

// peerPush is the path without airlock: decompress and untar the bundle into
// work/x (an OCI layout with an airlock/ directory), then push every image
// and model with crane, one `crane push` per entry, parallel at a time.
// crane push needs a layout with exactly one entry, so each gets a layout
// of its own whose blobs/ links to the extracted one. Attachments and SBOMs
// are not pushed.
func peerPush(ctx context.Context, crane, bundlePath, work, host string, parallel int) (peerRun, error) {
	var r peerRun
	start := time.Now()
	x := filepath.Join(work, "x")
	if err := os.MkdirAll(x, 0o755); err != nil {
		return r, err
	}
	var err error
	r.extract, err = run(ctx, work, nil, "bash", "-c", `set -o pipefail; zstd -dc -q "$1" | tar -x -C "$2"`, "extract", bundlePath, x)
	if err != nil {
		return r, err
	}
	raw, err := os.ReadFile(filepath.Join(x, "index.json"))
	if err != nil {
		return r, err
	}
	var idx struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return r, err
	}
	// One entry per artifact comes first; the entries after them repeat
	// some under a second name for oras (format.md section 8).
	raw, err = os.ReadFile(filepath.Join(x, "airlock", "bundle.json"))
	if err != nil {
		return r, err
	}
	var bm struct {
		Artifacts []json.RawMessage `json:"artifacts"`
	}
	if err := json.Unmarshal(raw, &bm); err != nil {
		return r, err
	}
	if len(bm.Artifacts) > len(idx.Manifests) {
		return r, fmt.Errorf("index.json has %d entries for %d artifacts", len(idx.Manifests), len(bm.Artifacts))
	}
	idx.Manifests = idx.Manifests[:len(bm.Artifacts)]
	pushStart := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, parallel)
	for i, e := range idx.Manifests {
		var d ocispec.Descriptor
		if err := json.Unmarshal(e, &d); err != nil {
			return r, err
		}
		kind, ref := d.Annotations["dev.airlock.kind"], d.Annotations[ocispec.AnnotationRefName]
		if kind != "image" && kind != "model" {
			continue
		}
		l := filepath.Join(work, fmt.Sprintf("l%03d", i))
		if err := singleEntryLayout(l, e); err != nil {
			return r, err
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			m, err := runPeak(ctx, work, nil, crane, "push", l, host+"/peer/"+ref)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.skipped = append(r.skipped, fmt.Sprintf("%s (%s): %v", ref, kind, craneErrLine(err.Error())))
				return
			}
			r.pushed++
			r.push.cpu += m.cpu
			r.push.maxRSSKiB = max(r.push.maxRSSKiB, m.maxRSSKiB)
		})
	}
	wg.Wait()
	r.push.wall = time.Since(pushStart)
	r.total = measurement{wall: time.Since(start), cpu: r.extract.cpu + r.push.cpu, maxRSSKiB: max(r.extract.maxRSSKiB, r.push.maxRSSKiB)}
	return r, nil
}

// singleEntryLayout makes dir an OCI layout whose index.json lists only
// entry and whose blobs/ links to ../x/blobs.
func singleEntryLayout(dir string, entry json.RawMessage) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join("..", "x", "blobs"), filepath.Join(dir, "blobs")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	one := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + string(entry) + `]}`
	return os.WriteFile(filepath.Join(dir, "index.json"), []byte(one), 0o644)
}

// craneErrLine is the first line of a failed run's error.
func craneErrLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// attachmentsFound checks, for every attachment and SBOM airlock mirrored
// (from its --json mappings), that a client finds it at host under prefix:
// a tagged one (cosign signature) by its tag, one with a subject by the
// referrers API or the sha256-<hex> fallback tag (remote.Referrers tries
// both). It returns how many were found and describes the first few that
// were not.
func attachmentsFound(ctx context.Context, res mirrorResult, fromPrefix, host, prefix string) (found, total int, missing []string) {
	opts := []remote.Option{remote.WithContext(ctx)}
	for _, mp := range res.Mappings {
		if mp.Kind != "attachment" && mp.Kind != "sbom" {
			continue
		}
		total++
		base, _, _ := strings.Cut(mp.Target, "@")
		_, rest, _ := strings.Cut(base, "/") // drop the registry host
		rest = strings.TrimPrefix(rest, fromPrefix+"/")
		repoPath, tag := rest, ""
		if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
			repoPath, tag = rest[:i], rest[i+1:]
		}
		err := findAttachment(opts, host+"/"+prefix+"/"+repoPath, tag, mp.Digest)
		if err == nil {
			found++
		} else if len(missing) < 3 {
			missing = append(missing, fmt.Sprintf("%s: %v", mp.Target, err))
		}
	}
	return found, total, missing
}

// findAttachment looks up one mirrored attachment in repoName: by tag when
// tag is set, and among the referrers of its subject when it has one.
func findAttachment(opts []remote.Option, repoName, tag, digest string) error {
	repo, err := name.NewRepository(repoName)
	if err != nil {
		return err
	}
	if tag != "" {
		d, err := remote.Head(repo.Tag(tag), opts...)
		if err != nil {
			return fmt.Errorf("tag %s: %w", tag, err)
		}
		if d.Digest.String() != digest {
			return fmt.Errorf("tag %s points at %s", tag, d.Digest)
		}
	}
	desc, err := remote.Get(repo.Digest(digest), opts...)
	if err != nil {
		return err
	}
	var m struct {
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return err
	}
	if m.Subject == nil {
		if tag == "" {
			return errors.New("neither tagged nor a referrer")
		}
		return nil
	}
	idx, err := remote.Referrers(repo.Digest(m.Subject.Digest), opts...)
	if err != nil {
		return fmt.Errorf("referrers of %s: %w", m.Subject.Digest, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, r := range im.Manifests {
		if r.Digest.String() == digest {
			return nil
		}
	}
	return fmt.Errorf("not among the %d referrers of %s", len(im.Manifests), m.Subject.Digest)
}

// BenchmarkMirrorVsCrane mirrors a 2.6 GB release (20 images sharing base
// layers, one of them a two-platform index, their signatures, attestations
// and SBOMs, and a 1 GiB model) into a fresh registry with airlock mirror,
// verification included, and compares the time with the path without
// airlock: zstd -dc | tar -x, then crane push of every image and the model.
// It counts the bytes each uploads, mirrors the bundle a second time into
// the same registry, checks that every signature and referrer can be found
// at the destination, and compares airlock's peak memory with that of
// mirroring a 0.3 GiB bundle.
func BenchmarkMirrorVsCrane(b *testing.B) {
	if _, err := os.Stat(gnuTime); err != nil {
		b.Skipf("needs GNU time at %s to read peak RSS (apt-get install time)", gnuTime)
	}
	testkit.RequireTool(b, "docker-registry", "apt-get install docker-registry")
	requireFree(b, 10<<30)
	// The registries keep their storage in the system temporary directory
	// (b.TempDir), one full copy at a time.
	if free, err := freeBytes(os.TempDir()); err == nil && free < 4<<30 {
		b.Skipf("needs 4 GiB free in %s for registry storage, has %.1f GiB", os.TempDir(), float64(free)/(1<<30))
	}
	crane := craneBinary(b)
	bin := need(b, "the airlock binary", fx.binary)
	keyDir := need(b, "the signing keys", fx.keys)
	ctx := b.Context()
	dir := filepath.Join(fx.root, "mirror")
	b.Cleanup(func() { os.RemoveAll(dir) })
	start := time.Now()
	in, err := makeMirrorBundles(ctx, bin, keyDir, dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("prepared the mirror release in %.1fs: generated it, packed and signed it and a two-image part of it", time.Since(start).Seconds())
	policy := filepath.Join(keyDir, policyFile)
	spool := filepath.Join(dir, "spool")
	work := filepath.Join(dir, "peer")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		b.Fatal(err)
	}
	bundleBytes, err := fileSize(in.big)
	if err != nil {
		b.Fatal(err)
	}
	smallBytes, err := fileSize(in.small)
	if err != nil {
		b.Fatal(err)
	}
	bodyBytes := inspectBodyBytes(b, bin, in.big)
	// airlock mirror spools blobs waiting for upload in the temporary
	// directory; keep them below the benchmark's directory.
	spoolEnv := []string{"TMPDIR=" + spool}

	// prepare flushes what the last run wrote, so that no writeback runs
	// during the next one, and puts the bundle in the page cache.
	prepare := func(bundlePath string) {
		b.StopTimer()
		defer b.StartTimer()
		os.RemoveAll(work)
		syscall.Sync()
		if _, err := warm(bundlePath); err != nil {
			b.Fatal(err)
		}
	}
	ours := func(bundlePath, host string) mirrorRun {
		prepare(bundlePath)
		cpu0 := registryCPU()
		m, err := runPeak(ctx, dir, spoolEnv, bin, "mirror", bundlePath, "--to", host+"/bench", "--policy", policy, "-q", "--json")
		if err != nil {
			b.Fatal(err)
		}
		r := mirrorRun{m: m, regCPU: registryCPU() - cpu0}
		if err := json.Unmarshal(m.stdout, &r.res); err != nil {
			b.Fatalf("mirror --json: %v", err)
		}
		return r
	}
	peer := func(host string, parallel int) peerRun {
		prepare(in.big)
		cpu0 := registryCPU()
		r, err := peerPush(ctx, crane, in.big, work, host, parallel)
		if err != nil {
			b.Fatal(err)
		}
		r.regCPU = registryCPU() - cpu0
		return r
	}
	// dropStorage empties a registry that is no longer needed; it keeps
	// running, idle, until the benchmark ends.
	dropStorage := func(reg *testkit.Registry) {
		b.StopTimer()
		defer b.StartTimer()
		os.RemoveAll(reg.Dir)
	}

	load := loadAverage()
	var oursRuns []mirrorRun
	var peers []peerRun
	var counted, second, small mirrorRun
	var countedPeer, parallelPeer peerRun
	var verifyRun measurement
	var upOurs, upPeer, upSecond, downSecond int64
	var found, total, peerFound int
	var missing []string
	b.ResetTimer()
	for range b.N {
		oursRuns, peers = oursRuns[:0], peers[:0]

		// Counted runs: each path through a proxy that counts the bytes.
		reg := testkit.Start(b)
		proxy := startCountingProxy(b, reg.Host)
		counted = ours(in.big, proxy.host)
		upOurs = proxy.up.Load()
		b.StopTimer()
		found, total, missing = attachmentsFound(ctx, counted.res, "bench", reg.Host, "bench")
		b.StartTimer()
		up0, down0 := proxy.up.Load(), proxy.down.Load()
		second = ours(in.big, proxy.host)
		upSecond, downSecond = proxy.up.Load()-up0, proxy.down.Load()-down0
		dropStorage(reg)

		reg = testkit.Start(b)
		proxy = startCountingProxy(b, reg.Host)
		countedPeer = peer(proxy.host, 1)
		upPeer = proxy.up.Load()
		b.StopTimer()
		peerFound, _, _ = attachmentsFound(ctx, counted.res, "bench", reg.Host, "peer")
		b.StartTimer()
		dropStorage(reg)

		// Timed runs, straight to the registry, alternating.
		for range mirrorRounds {
			reg := testkit.Start(b)
			oursRuns = append(oursRuns, ours(in.big, reg.Host))
			dropStorage(reg)
			reg = testkit.Start(b)
			peers = append(peers, peer(reg.Host, 1))
			dropStorage(reg)
		}

		// A faster peer: four crane pushes at a time.
		reg = testkit.Start(b)
		parallelPeer = peer(reg.Host, parallelPushes)
		dropStorage(reg)

		reg = testkit.Start(b)
		small = ours(in.small, reg.Host)
		dropStorage(reg)

		// What verifying alone costs, for where the time goes.
		prepare(in.big)
		if verifyRun, err = runPeak(ctx, dir, nil, bin, "verify", "-q", in.big, "--policy", policy); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()

	o := slices.MinFunc(oursRuns, func(x, y mirrorRun) int { return cmp.Compare(x.m.wall, y.m.wall) })
	p := slices.MinFunc(peers, func(x, y peerRun) int { return cmp.Compare(x.total.wall, y.total.wall) })
	ratio := o.m.seconds() / p.total.seconds()
	var all []measurement
	for _, r := range slices.Concat(oursRuns, []mirrorRun{counted, second}) {
		all = append(all, r.m)
	}
	peakBig := maxRSS(all)
	repush := float64(second.res.Blobs.BytesPushed) / float64(bundleBytes)
	lastMirror = &mirrorTimes{ours: o.m.seconds(), crane: p.total.seconds()}
	b.ReportMetric(ratio, "ratio_vs_crane")
	b.ReportMetric(o.m.seconds(), "mirror_s")
	b.ReportMetric(p.total.seconds(), "crane_path_s")
	b.ReportMetric(mib(bodyBytes)/o.m.seconds(), "mirror_MiB/s")
	b.ReportMetric(o.m.cpu.Seconds()/p.total.cpu.Seconds(), "cpu_ratio_vs_crane")
	b.ReportMetric((o.m.cpu+o.regCPU).Seconds()/(p.total.cpu+p.regCPU).Seconds(), "cpu_ratio_with_registry")
	b.ReportMetric(mib(counted.res.Blobs.BytesPushed), "bytes_pushed_MB")
	b.ReportMetric(mib(upOurs), "uploaded_MB")
	b.ReportMetric(mib(upPeer), "crane_uploaded_MB")
	b.ReportMetric(repush*100, "second_mirror_pushed_%")
	b.ReportMetric(second.m.seconds(), "second_mirror_s")
	b.ReportMetric(peakBig, "peak_rss_MB")
	b.ReportMetric(small.m.peakRSSMB(), "peak_rss_MB_small")
	b.ReportMetric(float64(found), "attachments_found")
	b.ReportMetric(float64(peerFound), "crane_attachments_found")
	b.ReportMetric(o.m.seconds()/parallelPeer.total.seconds(), "ratio_vs_crane_parallel")

	if found != total || total != in.attachments {
		b.Errorf("found %d of %d mirrored attachments at the destination, the release has %d: %s", found, total, in.attachments, strings.Join(missing, "; "))
	}
	if n := len(counted.res.Mappings); n != in.images+1+in.attachments {
		b.Errorf("mirror mapped %d artifacts, want %d images, 1 model and %d attachments", n, in.images, in.attachments)
	}
	notPushed := "nothing"
	if len(countedPeer.skipped) > 0 {
		notPushed = strings.Join(countedPeer.skipped, "; ")
	}
	b.Logf("mirror of a %.0f MiB bundle (%.0f MiB of blobs: %d images, %d signatures/referrers/SBOMs, a 1 GiB model), fastest of %d, each into a fresh docker-registry: airlock mirror %.2fs (%.0f MiB/s, cpu %.2fs + registry %.2fs, rss %.0f MiB) vs zstd -dc | tar -x and %d x crane push %.2fs (extract %.2fs, push %.2fs; cpu %.2fs + registry %.2fs): time ratio %.2f (target <= %.2f: %s); all runs: airlock %s, crane path %s; %d crane pushes at a time (one run): %.2fs (push %.2fs, cpu %.2fs + registry %.2fs), ratio %.2f; through the counting proxy: airlock %.2fs, crane path %.2fs; airlock verify alone %.2fs (cpu %.2fs)",
		mib(bundleBytes), mib(bodyBytes), in.images, in.attachments, mirrorRounds,
		o.m.seconds(), mib(bodyBytes)/o.m.seconds(), o.m.cpu.Seconds(), o.regCPU.Seconds(), o.m.peakRSSMB(),
		p.pushed, p.total.seconds(), p.extract.seconds(), p.push.seconds(), p.total.cpu.Seconds(), p.regCPU.Seconds(),
		ratio, targetMirrorRatio, verdict(ratio <= targetMirrorRatio), mirrorWalls(oursRuns), peerWalls(peers),
		parallelPushes, parallelPeer.total.seconds(), parallelPeer.push.seconds(), parallelPeer.total.cpu.Seconds(), parallelPeer.regCPU.Seconds(), o.m.seconds()/parallelPeer.total.seconds(),
		counted.m.seconds(), countedPeer.total.seconds(), verifyRun.seconds(), verifyRun.cpu.Seconds())
	b.Logf("uploaded (request bodies through the proxy): airlock %.0f MiB (--json bytesPushed %.0f MiB; %s) vs crane path %.0f MiB (%.2fx); crane could not push: %s; signatures/referrers/SBOMs findable: airlock %d of %d, crane path %d of %d",
		mib(upOurs), mib(counted.res.Blobs.BytesPushed), counted.res.counts(), mib(upPeer), float64(upPeer)/float64(upOurs), notPushed, found, total, peerFound, total)
	b.Logf("second mirror into the same registry: %.2fs, bytesPushed %d B = %.4f%% of the bundle (target < %.0f%%: %s), request bodies %d B, response bodies %.1f MiB; %s",
		second.m.seconds(), second.res.Blobs.BytesPushed, repush*100, targetRepushShare*100, verdict(repush < targetRepushShare), upSecond, mib(downSecond), second.res.counts())
	b.Logf("peak RSS of airlock mirror (GNU time): %.0f MiB for the %.0f MiB bundle, %.0f MiB for a %.0f MiB bundle (%.2fs) (target < %d MiB: %s); crane push %.0f MiB; load average %s -> %s",
		peakBig, mib(bundleBytes), small.m.peakRSSMB(), mib(smallBytes), small.m.seconds(), targetPeakRSSMB, verdict(peakBig < targetPeakRSSMB), p.push.peakRSSMB(), load, loadAverage())
}

// mirrorRun is one airlock mirror: what it cost, what it reported, and the
// CPU the registry used meanwhile.
type mirrorRun struct {
	m      measurement
	res    mirrorResult
	regCPU time.Duration
}

// mirrorWalls lists the wall times of airlock mirror runs.
func mirrorWalls(rs []mirrorRun) string {
	ms := make([]measurement, len(rs))
	for i, r := range rs {
		ms[i] = r.m
	}
	return walls(ms)
}

// peerWalls lists the total wall times of peer runs.
func peerWalls(rs []peerRun) string {
	ms := make([]measurement, len(rs))
	for i, r := range rs {
		ms[i] = r.total
	}
	return walls(ms)
}

// registryCPU returns the user and system CPU time used so far by the
// docker-registry processes this test process started, read from /proc
// (Linux; 0 elsewhere). Registries that are idle add nothing, so the
// difference across a run is what the run's registry spent.
func registryCPU() time.Duration {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var ticks int64
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, pid := range strings.Fields(string(raw)) {
			comm, err := os.ReadFile("/proc/" + pid + "/comm")
			if err != nil || strings.TrimSpace(string(comm)) != "docker-registry" {
				continue
			}
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil {
				continue
			}
			// Fields after the command name in parentheses start at the
			// state (field 3); utime and stime are fields 14 and 15.
			_, rest, _ := strings.Cut(string(stat), ") ")
			f := strings.Fields(rest)
			if len(f) < 13 {
				continue
			}
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * (time.Second / procClockTicks)
}

// procClockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const procClockTicks = 100

// mirrorTimes keeps BenchmarkMirrorVsCrane's fastest times for
// BenchmarkPackFromRegistry, which runs after it in the same process on the
// same release, to report the end-to-end ratio.
type mirrorTimes struct{ ours, crane float64 }

var lastMirror *mirrorTimes

// targetEndToEnd is issue 11's target for pack + mirror over crane's pull +
// archive + unarchive + push.
const targetEndToEnd = 0.7
