package benchmark

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// manyArtifacts is the number of file artifacts in the bundle of
	// BenchmarkHeadManyArtifacts: a release of many small configuration
	// files (issue 11 measured 1,343 artifacts and twice that).
	manyArtifacts = 2700
	// configDirs spreads the files over this many directories.
	configDirs = 90
	// Targets on the 2,700-artifact bundle.
	targetManyInspectMS = 50
	targetManySignMS    = 100
	// headRuns is how many timed runs each median is taken over.
	headRuns = 7
)

// configsBundle generates dir/src: n small YAML files in configDirs
// directories, each a file artifact with its own install target
// (etc/svcNN/appNNNN.yaml), and packs it into dir/configs-N.airlock. It
// returns the bundle path.
func configsBundle(dir, bin string, n int) (string, error) {
	src := filepath.Join(dir, fmt.Sprintf("src-%d", n))
	var spec strings.Builder
	fmt.Fprintf(&spec, "name: bench-configs\nversion: 1.0.0\nfiles:\n")
	for i := range n {
		svc := fmt.Sprintf("svc%02d", i%configDirs)
		rel := fmt.Sprintf("conf/%s/app%04d.yaml", svc, i)
		p := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		body := fmt.Sprintf("service: %s\ninstance: %d\nreplicas: 3\nlisten: 0.0.0.0:%d\n", svc, i, 8000+i)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return "", err
		}
		fmt.Fprintf(&spec, "  - source: %s\n    target: etc/%s/app%04d.yaml\n", rel, svc, i)
	}
	if err := os.WriteFile(filepath.Join(src, "airlock.yaml"), []byte(spec.String()), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, fmt.Sprintf("configs-%d.airlock", n))
	if _, err := packTo(context.Background(), bin, src, out); err != nil {
		return "", err
	}
	return out, os.RemoveAll(src)
}

// BenchmarkHeadManyArtifacts times `airlock inspect --json` and `airlock
// sign` on a bundle of 2,700 small file artifacts, whose head (about 3 MiB of
// JSON) is what both read: every artifact's manifest, target and file list
// is checked. Signing uses an unencrypted PKCS#8 key, so no key decryption
// (scrypt) is in the time. The same inspect on a bundle of half as many
// artifacts shows how the time grows: 2 is linear, 4 quadratic.
func BenchmarkHeadManyArtifacts(b *testing.B) {
	bin := need(b, "the airlock binary", fx.binary)
	keyDir := need(b, "the signing keys", fx.keys)
	bundlePath := need(b, fmt.Sprintf("the bundle of %d file artifacts", manyArtifacts), fx.configs)
	halfPath, err := configsBundle(filepath.Join(fx.root, "configs"), bin, manyArtifacts/2)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	dir := filepath.Dir(bundlePath)
	inspect := func(p string, want int) measurement {
		m, err := run(ctx, dir, nil, bin, "inspect", "--json", p)
		if err != nil {
			b.Fatal(err)
		}
		var report struct {
			Totals struct {
				Artifacts int `json:"artifacts"`
			} `json:"totals"`
		}
		if err := json.Unmarshal(m.stdout, &report); err != nil {
			b.Fatalf("inspect --json: %v", err)
		}
		if report.Totals.Artifacts != want {
			b.Fatalf("inspect --json reports %d artifacts, want %d", report.Totals.Artifacts, want)
		}
		return m
	}
	plainKey := keyPath(keyDir, plainKeyName)
	pub := filepath.Join(keyDir, signingKeyNames[0]+".pub")
	// Untimed: page in the binary and both bundles.
	inspect(bundlePath, manyArtifacts)
	inspect(halfPath, manyArtifacts/2)

	load := loadAverage()
	var inspectFull, inspectHalf, signs, starts, inspectCPU, halfCPU, signCPU, startCPU []time.Duration
	var outcomes []signOutcome
	b.ResetTimer()
	for range b.N {
		for range headRuns {
			m := inspect(bundlePath, manyArtifacts)
			inspectFull, inspectCPU = append(inspectFull, m.wall), append(inspectCPU, m.cpu)
			m = inspect(halfPath, manyArtifacts/2)
			inspectHalf, halfCPU = append(inspectHalf, m.wall), append(halfCPU, m.cpu)
			m, err := run(ctx, dir, nil, bin, "sign", bundlePath, "--key", plainKey, "--json")
			if err != nil {
				b.Fatal(err)
			}
			var o signOutcome
			if err := json.Unmarshal(m.stdout, &o); err != nil {
				b.Fatalf("sign --json: %v", err)
			}
			signs, signCPU = append(signs, m.wall), append(signCPU, m.cpu)
			outcomes = append(outcomes, o)
			// What starting airlock costs: fingerprint reads one public key.
			if m, err = run(ctx, dir, nil, bin, "key", "fingerprint", pub); err != nil {
				b.Fatal(err)
			}
			starts, startCPU = append(starts, m.wall), append(startCPU, m.cpu)
		}
	}
	b.StopTimer()
	inPlace := true
	for _, o := range outcomes {
		inPlace = inPlace && o.InPlace
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	full, half, sign, start := ms(median(inspectFull)), ms(median(inspectHalf)), ms(median(signs)), ms(median(starts))
	b.ReportMetric(start, "process_start_ms")
	// CPU time, not wall time: on a shared machine it varies much less.
	fullCPU, start0 := ms(median(inspectCPU)), ms(median(startCPU))
	growth := (fullCPU - start0) / (ms(median(halfCPU)) - start0)
	b.ReportMetric(full, "inspect_ms")
	b.ReportMetric(fullCPU, "inspect_cpu_ms")
	b.ReportMetric(ms(median(signCPU)), "sign_cpu_ms")
	b.ReportMetric(half, "inspect_ms_half")
	b.ReportMetric(growth, "growth_2x_artifacts")
	b.ReportMetric(sign, "sign_ms")
	b.Logf("%d file artifacts, median of %d: inspect --json %.1f ms, cpu %.1f ms (target < %d ms: %s), sign with an unencrypted key %.1f ms, cpu %.1f ms (target < %d ms: %s; in place: %v, %d signatures at the end); %d artifacts: inspect %.1f ms, cpu %.1f ms, so twice the artifacts cost %.2fx the CPU time (less the %.1f ms of CPU that starting airlock costs; 2 is linear); all runs: inspect %s, half %s, sign %s; load average %s -> %s",
		manyArtifacts, headRuns, full, ms(median(inspectCPU)), targetManyInspectMS, verdict(full < targetManyInspectMS),
		sign, ms(median(signCPU)), targetManySignMS, verdict(sign < targetManySignMS), inPlace, outcomes[len(outcomes)-1].Signatures,
		manyArtifacts/2, half, ms(median(halfCPU)), growth, start0,
		durations(inspectFull), durations(inspectHalf), durations(signs), load, loadAverage())
}
