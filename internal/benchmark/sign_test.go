package benchmark

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const (
	// hugeBundleBytes is the model packed for BenchmarkSignTime, in
	// hugeShardBytes files of random bytes (incompressible, so the bundle is
	// as large as the model).
	hugeBundleBytes = 10 << 30
	hugeShardBytes  = 2 << 30
	// targetSignMS is the target for airlock sign on the 10 GiB bundle.
	targetSignMS = 1000
	// signRounds is how many keys of each kind sign each bundle.
	signRounds = 3
	// tailBytes is how much of the end of a bundle is hashed to check that
	// signing left the body alone.
	tailBytes = 1 << 20
)

// BenchmarkSignTime times airlock sign on a 10 GiB bundle and on a 10 MiB
// one. Sign rewrites only the head, so both should take the same time,
// most of it spent loading the key (scrypt). The 10 GiB input is generated
// and packed here and deleted when the benchmark ends.
func BenchmarkSignTime(b *testing.B) {
	requireFree(b, 2*hugeBundleBytes+1<<30)
	bin := need(b, "the airlock binary", fx.binary)
	keyDir := need(b, "the signing keys", fx.keys)
	tiny := need(b, "the 10 MiB model", fx.tiny)
	ctx := b.Context()
	dir := filepath.Join(fx.root, "sign")
	b.Cleanup(func() { os.RemoveAll(dir) })

	genTime, packTime, err := hugeBundle(ctx, bin, dir)
	if err != nil {
		b.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.airlock")
	b.Logf("prepared the %.0f GiB bundle in %.1fs: generated the model in %.1fs, packed it with --level fastest in %.1fs (%.0f MiB/s)",
		float64(hugeBundleBytes)/(1<<30), (genTime + packTime).Seconds(), genTime.Seconds(), packTime.Seconds(), mib(hugeBundleBytes)/packTime.Seconds())
	small := filepath.Join(dir, "small.airlock")
	if _, err := packTo(ctx, bin, tiny, small); err != nil {
		b.Fatal(err)
	}
	hugeBefore, err := tailOf(huge)
	if err != nil {
		b.Fatal(err)
	}
	smallBefore, err := tailOf(small)
	if err != nil {
		b.Fatal(err)
	}
	// Nothing left to write back, and the binary paged in.
	syscall.Sync()
	pub := filepath.Join(keyDir, signingKeyNames[0]+".pub")
	if _, err := run(ctx, dir, nil, bin, "key", "fingerprint", pub); err != nil {
		b.Fatal(err)
	}

	load := loadAverage()
	var hugeEnc, smallEnc, hugePlain, smallPlain, startOnly []time.Duration
	var outcomes []signOutcome
	sign := func(bundlePath, key string, into *[]time.Duration) {
		m, err := run(ctx, dir, []string{benchPassword}, bin, "sign", bundlePath, "--key", keyPath(keyDir, key), "--json")
		if err != nil {
			b.Fatal(err)
		}
		var o signOutcome
		if err := json.Unmarshal(m.stdout, &o); err != nil {
			b.Fatalf("sign --json: %v", err)
		}
		*into = append(*into, m.wall)
		outcomes = append(outcomes, o)
	}
	b.ResetTimer()
	for range b.N {
		for i := range signRounds {
			sign(huge, signingKeyNames[i], &hugeEnc)
			sign(small, signingKeyNames[i], &smallEnc)
		}
		for range signRounds {
			sign(huge, plainKeyName, &hugePlain)
			sign(small, plainKeyName, &smallPlain)
		}
		// What starting airlock costs: fingerprint reads one public key.
		for range signRounds {
			m, err := run(ctx, dir, nil, bin, "key", "fingerprint", pub)
			if err != nil {
				b.Fatal(err)
			}
			startOnly = append(startOnly, m.wall)
		}
	}
	b.StopTimer()

	hugeAfter, err := tailOf(huge)
	if err != nil {
		b.Fatal(err)
	}
	smallAfter, err := tailOf(small)
	if err != nil {
		b.Fatal(err)
	}
	if hugeAfter.sum != hugeBefore.sum || smallAfter.sum != smallBefore.sum {
		b.Errorf("signing changed the last %d bytes of a bundle (10 GiB: %v, small: %v)", tailBytes, hugeAfter.sum != hugeBefore.sum, smallAfter.sum != smallBefore.sum)
	}
	inPlace := true
	for _, o := range outcomes {
		inPlace = inPlace && o.InPlace
	}
	unchanged := hugeAfter == hugeBefore && smallAfter == smallBefore

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	hugeMS, smallMS := ms(median(hugeEnc)), ms(median(smallEnc))
	hugePlainMS, smallPlainMS := ms(median(hugePlain)), ms(median(smallPlain))
	startMS := ms(median(startOnly))
	b.ReportMetric(hugeMS, "sign_ms_10GiB")
	b.ReportMetric(smallMS, "sign_ms_small")
	b.ReportMetric(hugeMS/smallMS, "ratio_10GiB_vs_small")
	b.ReportMetric(hugePlainMS, "sign_ms_10GiB_plain_key")
	b.ReportMetric(smallPlainMS, "sign_ms_small_plain_key")
	b.ReportMetric(smallMS-smallPlainMS, "key_load_ms")
	b.ReportMetric(startMS, "process_start_ms")
	b.Logf("sign, median of %d: %.0f MiB bundle %.1f ms vs %.1f MiB bundle %.1f ms (ratio %.2f); target < %d ms: %s; with an unencrypted key: %.1f ms vs %.1f ms, so loading the encrypted key (scrypt) costs about %.0f ms; starting airlock (key fingerprint) %.1f ms; all runs: 10 GiB %s, small %s, 10 GiB plain key %s, small plain key %s; every signature in place: %v; size and last MiB unchanged: %v; %d signatures on each bundle; load average %s -> %s",
		signRounds, mib(hugeBefore.size), hugeMS, mib(smallBefore.size), smallMS, hugeMS/smallMS, targetSignMS, verdict(hugeMS < targetSignMS),
		hugePlainMS, smallPlainMS, smallMS-smallPlainMS, startMS,
		durations(hugeEnc), durations(smallEnc), durations(hugePlain), durations(smallPlain),
		inPlace, unchanged, outcomes[len(outcomes)-1].Signatures, load, loadAverage())
}

// signOutcome is the part of `airlock sign --json` the benchmark checks.
type signOutcome struct {
	InPlace    bool `json:"inPlace"`
	Signatures int  `json:"signatures"`
}

// hugeBundle generates a model of hugeBundleBytes random bytes in dir/src,
// packs it into dir/huge.airlock with --level fastest, and deletes the model.
// It returns how long generating and packing took.
func hugeBundle(ctx context.Context, bin, dir string) (gen, pack time.Duration, err error) {
	src := filepath.Join(dir, "src")
	defer os.RemoveAll(src)
	start := time.Now()
	model := filepath.Join(src, "model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		return 0, 0, err
	}
	cfg := `{"architectures":["BenchModel"],"hidden_size":8192,"num_layers":80}` + "\n"
	if err := os.WriteFile(filepath.Join(model, "config.json"), []byte(cfg), 0o644); err != nil {
		return 0, 0, err
	}
	shards := int64(hugeBundleBytes / hugeShardBytes)
	for i := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, shards)
		if err := writeFile(filepath.Join(model, name), "sign/"+name, hugeShardBytes); err != nil {
			return 0, 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(src, "airlock.yaml"), []byte(modelSpec), 0o644); err != nil {
		return 0, 0, err
	}
	gen = time.Since(start)
	m, err := packTo(ctx, bin, src, filepath.Join(dir, "huge.airlock"), "--level", "fastest")
	if err != nil {
		return gen, 0, err
	}
	return gen, m.wall, nil
}

// writeFile writes size random bytes seeded by label to path.
func writeFile(path, label string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := generate(f, label, size, allRandom); err != nil {
		return err
	}
	return f.Close()
}

// tail is the size of a file and the SHA-256 of its last tailBytes.
type tail struct {
	size int64
	sum  [32]byte
}

// tailOf reads the end of the file at p.
func tailOf(p string) (tail, error) {
	f, err := os.Open(p)
	if err != nil {
		return tail{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return tail{}, err
	}
	n := min(st.Size(), tailBytes)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, st.Size()-n, n)); err != nil {
		return tail{}, err
	}
	t := tail{size: st.Size()}
	h.Sum(t.sum[:0])
	return t, nil
}

// median returns the middle of ds (the upper middle for an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// durations lists ds in milliseconds, e.g. "212ms/198ms/205ms".
func durations(ds []time.Duration) string {
	out := ""
	for i, d := range ds {
		if i > 0 {
			out += "/"
		}
		out += strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return out
}
