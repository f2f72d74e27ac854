package benchmark

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// zstdTarX is the reference for install: decompress the bundle and unpack
// its tar into a directory, then sync like install does.
const zstdTarX = `set -o pipefail; zstd -dc -q "$1" | tar -x -C "$2" && sync -f "$2"`

// targetInstallRatio is the target: install no slower than 1.3x the reference.
const targetInstallRatio = 1.3

// BenchmarkInstallVsZstdTar installs the bundle of the 2 GiB model (signed
// by one key, checked against a 1-of-1 policy) into a fresh root, and
// compares with zstd -dc | tar -x of the same bundle, fastest of 3 each. It
// also reports install's peak RSS, which should not grow with the model.
func BenchmarkInstallVsZstdTar(b *testing.B) {
	if _, err := os.Stat(gnuTime); err != nil {
		b.Skipf("needs GNU time at %s to read peak RSS (apt-get install time)", gnuTime)
	}
	requireFree(b, 6<<30)
	bin := need(b, "the airlock binary", fx.binary)
	keyDir := need(b, "the signing keys", fx.keys)
	large := need(b, "the 2 GiB model", fx.large)
	ctx := b.Context()
	bundlePath, ok := fx.bundle(large)
	if !ok {
		_, _, bundlePath = packModel(b, bin, large)
	}
	dir := filepath.Join(fx.root, "install")
	b.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if _, err := run(ctx, dir, []string{benchPassword}, bin, "sign", bundlePath, "--key", keyPath(keyDir, signingKeyNames[0])); err != nil {
		b.Fatal(err)
	}
	policy := filepath.Join(keyDir, policyFile)
	fresh := func(name string) string {
		p := filepath.Join(dir, name)
		os.RemoveAll(p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		if _, err := warm(bundlePath); err != nil {
			b.Fatal(err)
		}
		return p
	}
	var ours, theirs []measurement
	b.ResetTimer()
	for range b.N {
		for range 3 {
			b.StopTimer()
			root := fresh("root")
			b.StartTimer()
			m, err := runPeak(ctx, dir, nil, bin, "install", "-q", bundlePath, "--root", root, "--policy", policy)
			if err != nil {
				b.Fatal(err)
			}
			ours = append(ours, m)
			b.StopTimer()
			out := fresh("tar")
			b.StartTimer()
			t, err := run(ctx, dir, nil, "bash", "-c", zstdTarX, "zstd-tar", bundlePath, out)
			if err != nil {
				b.Fatal(err)
			}
			theirs = append(theirs, t)
		}
	}
	b.StopTimer()
	o, t := fastest(ours), fastest(theirs)
	ratio := o.seconds() / t.seconds()
	b.ReportMetric(ratio, "ratio_vs_zstd_tar")
	b.ReportMetric(maxRSS(ours), "peak_rss_MB")
	b.Logf("install 2 GiB model, fastest of 3: airlock %.2fs (cpu %.2fs, peak RSS %.0f MiB) vs zstd -dc | tar -x %.2fs (cpu %.2fs): ratio %.2f (target <= %.1f: %s); all runs: airlock %s, zstd|tar %s; load average %s",
		o.seconds(), o.cpu.Seconds(), maxRSS(ours), t.seconds(), t.cpu.Seconds(), ratio, targetInstallRatio, verdict(ratio <= targetInstallRatio), walls(ours), walls(theirs), loadAverage())
}
