package benchmark

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const (
	// targetVerifyRatio is the target for verify throughput over the
	// throughput of zstd -dc | sha256sum.
	targetVerifyRatio = 0.8
	// verifyRounds is how many times each tool runs; the fastest counts.
	verifyRounds = 3
)

// zstdSha256 is the reference for verify: decompress the whole bundle and
// hash what comes out, which is the least work that checks every byte.
const zstdSha256 = `set -o pipefail; zstd -dc -q "$1" | sha256sum >/dev/null`

// zstdOpenSSL is the same with OpenSSL's SHA-256, which uses the CPU's SHA
// instructions where coreutils' sha256sum may not. It is a second, stronger
// reference, measured when openssl is on PATH.
const zstdOpenSSL = `set -o pipefail; zstd -dc -q "$1" | openssl dgst -sha256 >/dev/null`

// BenchmarkVerifyVsZstdSha256 verifies the 2 GiB model's bundle, signed by
// one key, against a 1-of-1 policy, and compares the throughput with
// zstd -dc | sha256sum over the same file, both read from the page cache. It
// also verifies a 10 MiB bundle to show that verify's memory does not grow
// with the bundle.
func BenchmarkVerifyVsZstdSha256(b *testing.B) {
	if _, err := os.Stat(gnuTime); err != nil {
		b.Skipf("needs GNU time at %s to read peak RSS (apt-get install time)", gnuTime)
	}
	bin := need(b, "the airlock binary", fx.binary)
	keyDir := need(b, "the signing keys", fx.keys)
	large := need(b, "the 2 GiB model", fx.large)
	tiny := need(b, "the 10 MiB model", fx.tiny)
	ctx := b.Context()
	bundlePath, ok := fx.bundle(large)
	if !ok {
		requireFree(b, 2<<30)
		_, _, bundlePath = packModel(b, bin, large)
	}
	dir := filepath.Join(fx.root, "verify")
	b.Cleanup(func() { os.RemoveAll(dir) })
	small := filepath.Join(dir, "small.airlock")
	if _, err := packTo(ctx, bin, tiny, small); err != nil {
		b.Fatal(err)
	}
	policy := filepath.Join(keyDir, policyFile)
	var bodyBytes [2]int64
	for i, p := range []string{bundlePath, small} {
		// Signing again with the same key replaces its signature, so the
		// shared bundle may already carry it.
		if _, err := run(ctx, dir, []string{benchPassword}, bin, "sign", p, "--key", keyPath(keyDir, signingKeyNames[0])); err != nil {
			b.Fatal(err)
		}
		if bodyBytes[i] = inspectBodyBytes(b, bin, p); bodyBytes[i] <= 0 {
			b.Fatalf("inspect --json reports no body bytes in %s", p)
		}
	}
	verify := func(p string) measurement {
		b.StopTimer()
		if _, err := warm(p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		m, err := runPeak(ctx, dir, nil, bin, "verify", "-q", p, "--policy", policy)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	verify(small) // pages in the binary and checks that the policy works

	load := loadAverage()
	reference := func(script string) measurement {
		b.StopTimer()
		if _, err := warm(bundlePath); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		m, err := runPeak(ctx, dir, nil, "bash", "-c", script, "reference", bundlePath)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	_, err := exec.LookPath("openssl")
	withOpenSSL := err == nil

	var ours, theirs, openssl, smallRuns []measurement
	b.ResetTimer()
	for range b.N {
		ours, theirs, openssl, smallRuns = ours[:0], theirs[:0], openssl[:0], smallRuns[:0]
		for range verifyRounds {
			ours = append(ours, verify(bundlePath))
			theirs = append(theirs, reference(zstdSha256))
			if withOpenSSL {
				openssl = append(openssl, reference(zstdOpenSSL))
			}
			smallRuns = append(smallRuns, verify(small))
		}
	}
	b.StopTimer()

	size, err := fileSize(bundlePath)
	if err != nil {
		b.Fatal(err)
	}
	o, t := fastest(ours), fastest(theirs)
	oursRate, theirsRate := mib(bodyBytes[0])/o.seconds(), mib(bodyBytes[0])/t.seconds()
	ratio := oursRate / theirsRate
	b.ReportMetric(ratio, "ratio_vs_zstd_sha256")
	b.ReportMetric(oursRate, "verify_MiB/s")
	b.ReportMetric(theirsRate, "zstd_sha256_MiB/s")
	b.ReportMetric(o.cpu.Seconds()/t.cpu.Seconds(), "cpu_ratio_vs_zstd_sha256")
	b.ReportMetric(maxRSS(ours), "peak_rss_MB_verify_2GiB")
	b.ReportMetric(maxRSS(smallRuns), "peak_rss_MB_verify_small")
	b.ReportMetric(maxRSS(theirs), "zstd_sha256_peak_rss_MB")
	stronger := "not measured (no openssl on PATH)"
	if withOpenSSL {
		s := fastest(openssl)
		sslRate := mib(bodyBytes[0]) / s.seconds()
		b.ReportMetric(sslRate, "zstd_openssl_MiB/s")
		b.ReportMetric(oursRate/sslRate, "ratio_vs_zstd_openssl")
		stronger = fmt.Sprintf("%.2fs (%.0f MiB/s, cpu %.2fs), throughput ratio %.2f, all runs %s", s.seconds(), sslRate, s.cpu.Seconds(), oursRate/sslRate, walls(openssl))
	}
	b.Logf("verify %.0f MiB (bundle %.0f MiB), fastest of %d: airlock verify %.2fs (%.0f MiB/s, cpu %.2fs, rss %.0f MiB) vs zstd -dc | sha256sum %.2fs (%.0f MiB/s, cpu %.2fs, rss %.0f MiB): throughput ratio %.2f (target >= %.2f: %s); all runs: airlock %s, zstd|sha256sum %s; zstd -dc | openssl dgst -sha256: %s; verify of a %.0f MiB bundle: %s, rss %.0f MiB (peak RSS read by GNU time; wait4 would report at least this test process's own %.0f MiB); load average %s -> %s",
		mib(bodyBytes[0]), mib(size), verifyRounds, o.seconds(), oursRate, o.cpu.Seconds(), maxRSS(ours),
		t.seconds(), theirsRate, t.cpu.Seconds(), maxRSS(theirs),
		ratio, targetVerifyRatio, verdict(ratio >= targetVerifyRatio), walls(ours), walls(theirs),
		stronger, mib(bodyBytes[1]), walls(smallRuns), maxRSS(smallRuns), selfPeakRSSMB(), load, loadAverage())
}

// inspectBodyBytes returns the body bytes airlock inspect --json reports
// for the bundle at p.
func inspectBodyBytes(b *testing.B, bin, p string) int64 {
	b.Helper()
	m, err := run(b.Context(), filepath.Dir(p), nil, bin, "inspect", "--json", p)
	if err != nil {
		b.Fatal(err)
	}
	var report struct {
		Totals struct {
			BodyBytes int64 `json:"bodyBytes"`
		} `json:"totals"`
	}
	if err := json.Unmarshal(m.stdout, &report); err != nil {
		b.Fatalf("inspect --json: %v", err)
	}
	return report.Totals.BodyBytes
}
