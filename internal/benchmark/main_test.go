package benchmark

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Sizes of the generated inputs.
const (
	// Each of the three images has one layer of random files and one of text files.
	imageRandomBytes = 100 << 20
	imageTextBytes   = 100 << 20
	// The model of the mixed release alternates random and text chunks.
	mixedModelBytes = 400 << 20
	// Models packed alone to watch memory.
	smallModelBytes = 512 << 20
	largeModelBytes = 2 << 30
	// A model small enough that signing and verifying it cost almost nothing
	// beyond starting the process and loading the key.
	tinyModelBytes = 10 << 20
)

// sourceDateEpoch makes every pack reproducible: 2026-01-01T00:00:00Z.
const sourceDateEpoch = "SOURCE_DATE_EPOCH=1767225600"

// benchExpires is the --expires of the bundles that are verified: with
// SOURCE_DATE_EPOCH the default (90 days after creation) has long passed.
const benchExpires = "2100-01-01T00:00:00Z"

// fx holds what the benchmarks of one test process share. TestMain sets it.
var fx *fixtures

// fixtures are the airlock binary and generated inputs, each made on first
// use and at most once per process, all below root.
type fixtures struct {
	root   string
	binary func() (string, error)
	mixed  func() (string, error)
	small  func() (string, error)
	large  func() (string, error)
	tiny   func() (string, error)
	keys   func() (string, error)
	// configs packs manyArtifacts small files into one bundle (head_test.go).
	configs func() (string, error)

	mu      sync.Mutex
	bundles map[string]string // model source dir -> bundle packed from it
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	base := os.Getenv("AIRLOCK_BENCH_DIR")
	if base == "" {
		base = os.TempDir()
	}
	root, err := os.MkdirTemp(base, "airlock-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchmark: %v (set AIRLOCK_BENCH_DIR to a writable directory)\n", err)
		return 1
	}
	defer os.RemoveAll(root)
	fx = newFixtures(root, os.Getenv("AIRLOCK_BIN"))
	return m.Run()
}

func newFixtures(root, bin string) *fixtures {
	f := &fixtures{root: root, bundles: map[string]string{}}
	f.binary = sync.OnceValues(func() (string, error) { return airlockBinary(root, bin) })
	f.mixed = sync.OnceValues(func() (string, error) { return mixedRelease(filepath.Join(root, "mixed")) })
	f.small = sync.OnceValues(func() (string, error) { return modelRelease(filepath.Join(root, "model-512m"), smallModelBytes) })
	f.large = sync.OnceValues(func() (string, error) { return modelRelease(filepath.Join(root, "model-2g"), largeModelBytes) })
	f.tiny = sync.OnceValues(func() (string, error) { return modelRelease(filepath.Join(root, "model-10m"), tinyModelBytes) })
	f.keys = sync.OnceValues(func() (string, error) {
		bin, err := f.binary()
		if err != nil {
			return "", err
		}
		return signingKeys(filepath.Join(root, "keys"), bin)
	})
	f.configs = sync.OnceValues(func() (string, error) {
		bin, err := f.binary()
		if err != nil {
			return "", err
		}
		return configsBundle(filepath.Join(root, "configs"), bin, manyArtifacts)
	})
	return f
}

// need returns a fixture, making it on first use, and fails b when it could
// not be made. Making a fixture is logged with the time it took.
func need(b *testing.B, what string, get func() (string, error)) string {
	b.Helper()
	start := time.Now()
	p, err := get()
	if err != nil {
		b.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		b.Logf("prepared %s in %.1fs", what, d.Seconds())
	}
	return p
}

// requireFree skips b when the benchmark directory has less than n bytes free.
func requireFree(b *testing.B, n int64) {
	b.Helper()
	free, err := freeBytes(fx.root)
	if err != nil {
		b.Fatal(err)
	}
	if free < n {
		b.Skipf("needs %.1f GiB free in %s, has %.1f GiB (set AIRLOCK_BENCH_DIR elsewhere)", float64(n)/(1<<30), fx.root, float64(free)/(1<<30))
	}
}

// airlockBinary returns bin when set, else builds cmd/airlock into root.
func airlockBinary(root, bin string) (string, error) {
	if bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("AIRLOCK_BIN: %w", err)
		}
		return abs, nil
	}
	out := filepath.Join(root, "bin", "airlock")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/airlock-dev/airlock/cmd/airlock")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/airlock: %w\n%s", err, msg)
	}
	return out, nil
}

const mixedSpec = `name: bench-mixed
version: 1.0.0
images:
  - ref: oci:./layout:app
  - ref: oci:./layout:ml
  - ref: oci:./layout:tools
models:
  - source: model
    name: bench-model
    target: models/bench
`

// mixedRelease generates dir/src: an OCI layout with three images (each one
// layer of random files and one of text files) and a model that alternates
// random and text chunks, plus the airlock.yaml naming them. It returns the
// source directory.
func mixedRelease(dir string) (string, error) {
	src := filepath.Join(dir, "src")
	lw, err := newLayoutWriter(filepath.Join(src, "layout"))
	if err != nil {
		return "", err
	}
	for _, tag := range []string{"app", "ml", "tools"} {
		randomFiles := []layerFile{
			{name: "usr/lib/lib" + tag + "-core.so", size: imageRandomBytes / 2, kind: allRandom},
			{name: "usr/lib/lib" + tag + "-extra.so", size: imageRandomBytes / 4, kind: allRandom},
			{name: "usr/share/" + tag + "/assets.pak", size: imageRandomBytes / 4, kind: allRandom},
		}
		textFiles := []layerFile{
			{name: "var/log/" + tag + "/service.log", size: imageTextBytes / 2, kind: allText},
			{name: "usr/src/" + tag + "/main.go", size: imageTextBytes / 4, kind: allText},
			{name: "usr/share/" + tag + "/data.jsonl", size: imageTextBytes / 4, kind: allText},
		}
		if err := lw.addImage(tag, "image/"+tag, [][]layerFile{randomFiles, textFiles}); err != nil {
			return "", err
		}
	}
	if err := lw.finish(); err != nil {
		return "", err
	}
	if err := writeModel(filepath.Join(src, "model"), "mixed", mixedModelBytes); err != nil {
		return "", err
	}
	return src, os.WriteFile(filepath.Join(src, "airlock.yaml"), []byte(mixedSpec), 0o644)
}

const modelSpec = `name: bench-model
version: 1.0.0
models:
  - source: model
    name: weights
    target: models/weights
`

// modelRelease generates dir/src with one model of size bytes and returns the
// source directory.
func modelRelease(dir string, size int64) (string, error) {
	src := filepath.Join(dir, "src")
	if err := writeModel(filepath.Join(src, "model"), filepath.Base(dir), size); err != nil {
		return "", err
	}
	return src, os.WriteFile(filepath.Join(src, "airlock.yaml"), []byte(modelSpec), 0o644)
}

// writeModel writes a model directory: a small config.json and a weights
// file of size bytes alternating random and text chunks.
func writeModel(dir, label string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := `{"architectures":["BenchModel"],"hidden_size":4096,"num_layers":32}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := generate(f, "model/"+label, size, halfAndHalf); err != nil {
		return err
	}
	return f.Close()
}

// setBundle remembers the bundle packed from a model source.
func (f *fixtures) setBundle(src, bundle string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bundles[src] = bundle
}

// bundle returns the bundle packed from a model source, if any.
func (f *fixtures) bundle(src string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.bundles[src]
	return p, ok
}
