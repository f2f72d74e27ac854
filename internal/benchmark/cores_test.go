package benchmark

import (
	"crypto/rand"
	"crypto/sha256"
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
	requireFree(b, 6<<30)
	in, err := makeMirrorBundles(ctx, bin, keyDir, dir)
	if err != nil {
		b.Fatal(err)
	}
	policy := filepath.Join(keyDir, policyFile)
	body := inspectBodyBytes(b, bin, in.big)
	load := loadAverage()
	sha := shaRate()
	best := map[int]float64{}
	b.ResetTimer()
	for range b.N {
		for range verifyRounds {
			for _, procs := range []int{1, 2} {
				b.StopTimer()
				if _, err := warm(in.big); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				m, err := run(ctx, dir, []string{"GOMAXPROCS=" + strconv.Itoa(procs)}, bin, "verify", "-q", in.big, "--policy", policy)
				if err != nil {
					b.Fatal(err)
				}
				if r := mib(body) / m.seconds(); r > best[procs] {
					best[procs] = r
				}
			}
		}
	}
	b.StopTimer()
	r1, r2 := best[1]/sha, best[2]/sha
	b.ReportMetric(sha, "go_sha256_1core_MiB/s")
	b.ReportMetric(best[1], "verify_1core_MiB/s")
	b.ReportMetric(best[2], "verify_2cores_MiB/s")
	b.ReportMetric(r1, "ratio_1core_vs_sha256")
	b.ReportMetric(r2, "ratio_2cores_vs_sha256")
	b.Logf("verify of %.0f MiB (the mirror benchmark release, %d images), fastest of %d: GOMAXPROCS=1 %.0f MiB/s = %.2fx, GOMAXPROCS=2 %.0f MiB/s = %.2fx the single-core Go SHA-256 rate (%.0f MiB/s) (target on 2 cores >= %.1fx: %s); slope %.2fx from one core to two; load average %s -> %s",
		mib(body), in.images, verifyRounds, best[1], r1, best[2], r2, sha, targetVerifyCores, verdict(r2 >= targetVerifyCores), best[2]/best[1], load, loadAverage())
}
