package benchmark

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// targetVerifyCores is the target for verify on 2 cores: at least
// this many times the single-core Go SHA-256 rate.
const targetVerifyCores = 1.7

// shaRate measures Go's SHA-256 on one core (this process, one goroutine)
// in MiB/s: the fastest of three passes over 256 MiB.
func shaRate() float64 {
	buf := make([]byte, 16<<20)
	rand.Read(buf)
	best := 0.0
	for range 3 {
		h := sha256.New()
		start := time.Now()
		for range 16 {
			h.Write(buf)
		}
		h.Sum(nil)
		if r := 256 / time.Since(start).Seconds(); r > best {
			best = r
		}
	}
	return best
}

// randomBlobs is the bundle of BenchmarkVerifyCores's second workload:
// randomFiles files of randomFileBytes random bytes each (zstd stores them
// as raw blocks, so decompression costs almost nothing), as one model.
const (
	randomFiles     = 8
	randomFileBytes = 256 << 20
)

// randomBundle packs randomFiles random files as one model into dir and
// signs it; it returns the bundle's path.
func randomBundle(ctx context.Context, bin, keyDir, dir string) (string, error) {
	src := filepath.Join(dir, "src-random")
	defer os.RemoveAll(src)
	model := filepath.Join(src, "model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		return "", err
	}
	for i := range randomFiles {
		f, err := os.Create(filepath.Join(model, fmt.Sprintf("part-%02d.bin", i)))
		if err != nil {
			return "", err
		}
		err = generate(f, fmt.Sprintf("random/%d", i), randomFileBytes, allRandom)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(src, "airlock.yaml"), []byte(modelSpec), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "random.airlock")
	if _, err := packTo(ctx, bin, src, out); err != nil {
		return "", err
	}
	if _, err := run(ctx, dir, []string{benchPassword}, bin, "sign", out, "--key", keyPath(keyDir, signingKeyNames[0])); err != nil {
		return "", err
	}
	return out, nil
}

// BenchmarkVerifyCores verifies the release of BenchmarkMirrorVsCrane (21
// images with signatures and referrers, SBOMs, a 1 GiB model; a format v2
// bundle in a file, so verify checks it out of order on every core) with
// GOMAXPROCS=1 and GOMAXPROCS=2, and reports each rate as a multiple of
// the single-core Go SHA-256 rate measured in the same run: the slope
// between the two says how verify scales with cores.
func BenchmarkVerifyCores(b *testing.B) {
	bin := need(b, "the airlock binary", fx.binary)
	keyDir := need(b, "the signing keys", fx.keys)
	ctx := b.Context()
	dir := filepath.Join(fx.root, "verify-cores")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	requireFree(b, 9<<30)
	in, err := makeMirrorBundles(ctx, bin, keyDir, dir)
	if err != nil {
		b.Fatal(err)
	}
	rnd, err := randomBundle(ctx, bin, keyDir, dir)
	if err != nil {
		b.Fatal(err)
	}
	policy := filepath.Join(keyDir, policyFile)
	body := inspectBodyBytes(b, bin, in.big)
	rndBody := inspectBodyBytes(b, bin, rnd)
	load := loadAverage()
	sha := shaRate()
	best := map[int]float64{}
	bestRnd := map[int]float64{}
	b.ResetTimer()
	for range b.N {
		for range verifyRounds {
			for _, procs := range []int{1, 2} {
				for _, w := range []struct {
					path  string
					bytes int64
					best  map[int]float64
				}{{in.big, body, best}, {rnd, rndBody, bestRnd}} {
					b.StopTimer()
					if _, err := warm(w.path); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					m, err := run(ctx, dir, []string{"GOMAXPROCS=" + strconv.Itoa(procs)}, bin, "verify", "-q", w.path, "--policy", policy)
					if err != nil {
						b.Fatal(err)
					}
					if r := mib(w.bytes) / m.seconds(); r > w.best[procs] {
						w.best[procs] = r
					}
				}
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(bestRnd[2]/sha, "ratio_2cores_vs_sha256_random_blobs")
	b.Logf("incompressible content (%d blobs of %d MiB of random bytes, stored by zstd as raw blocks): GOMAXPROCS=1 %.0f MiB/s = %.2fx, GOMAXPROCS=2 %.0f MiB/s = %.2fx the single-core Go SHA-256 rate; slope %.2fx",
		randomFiles, randomFileBytes>>20, bestRnd[1], bestRnd[1]/sha, bestRnd[2], bestRnd[2]/sha, bestRnd[2]/bestRnd[1])
	r1, r2 := best[1]/sha, best[2]/sha
	b.ReportMetric(sha, "go_sha256_1core_MiB/s")
	b.ReportMetric(best[1], "verify_1core_MiB/s")
	b.ReportMetric(best[2], "verify_2cores_MiB/s")
	b.ReportMetric(r1, "ratio_1core_vs_sha256")
	b.ReportMetric(r2, "ratio_2cores_vs_sha256")
	b.Logf("verify of %.0f MiB (the mirror benchmark release, %d images), fastest of %d: GOMAXPROCS=1 %.0f MiB/s = %.2fx, GOMAXPROCS=2 %.0f MiB/s = %.2fx the single-core Go SHA-256 rate (%.0f MiB/s) (target on 2 cores >= %.1fx: %s); slope %.2fx from one core to two; load average %s -> %s",
		mib(body), in.images, verifyRounds, best[1], r1, best[2], r2, sha, targetVerifyCores, verdict(r2 >= targetVerifyCores), best[2]/best[1], load, loadAverage())
}
