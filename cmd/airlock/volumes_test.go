package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// volumeRelease writes a release of incompressible model files (about 17
// MB) and a policy trusting the key it is signed with; it returns the
// airlock.yaml, the key and the policy.
func volumeRelease(t *testing.T) (spec, key, pol string) {
	t.Helper()
	pol = writeKeyPolicy(t, "keys:\n  k: { publicKey: k.pub }\nbundles:\n  - match: vt\n    signers: [k]\n    threshold: 1\n")
	key = filepath.Join(filepath.Dir(pol), "k.key")
	dir := t.TempDir()
	m := filepath.Join(dir, "models", "m")
	if err := os.MkdirAll(m, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{9})
	for name, size := range map[string]int{"w1.bin": 10 << 20, "w2.bin": 7 << 20, "config.json": 100} {
		b := make([]byte, size)
		rng.Read(b)
		if err := os.WriteFile(filepath.Join(m, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec = filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(spec, []byte("name: vt\nversion: 1.0.0\nmodels:\n  - source: models/m\n    name: m\n    target: models/m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return spec, key, pol
}

// TestVolumeSets: pack writes volumes, every reading command takes the set
// (a directory or a volume), one volume checks alone, and a missing or
// corrupt volume is named by number before anything is pushed or installed.
func TestVolumeSets(t *testing.T) {
	t.Parallel()
	spec, key, pol := volumeRelease(t)
	env := map[string]string{"AIRLOCK_PASSWORD": "pw"}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "vt-1.0.0.airlock")
	code, stdout, stderr := runCLI(t, env, "pack", "-q", "-f", spec, "-o", out, "-k", key, "--volume-size", "6MiB")
	if code != 0 {
		t.Fatalf("pack: exit %d: %s", code, stderr)
	}
	vols := strings.Fields(stdout)
	if len(vols) < 3 || vols[0] != out+".001" {
		t.Fatalf("pack -q printed %q, want the volumes one per line", stdout)
	}
	// --json names volume 1 as the bundle, and every volume.
	jsonOut := filepath.Join(t.TempDir(), "j.airlock")
	code, stdout, stderr = runCLI(t, env, "pack", "--json", "-f", spec, "-o", jsonOut, "-k", key, "--volume-size", "6MiB")
	var summary struct {
		Bundle  string   `json:"bundle"`
		Volumes []string `json:"volumes"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &summary) != nil || summary.Bundle != jsonOut+".001" || len(summary.Volumes) != len(vols) {
		t.Fatalf("pack --json of volumes: exit %d, %s %s", code, stdout, stderr)
	}
	var cat []byte
	for _, v := range vols {
		b, err := os.ReadFile(v)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 6<<20 {
			t.Fatalf("%s is %d bytes, over --volume-size", v, len(b))
		}
		cat = append(cat, b...)
	}
	whole := filepath.Join(t.TempDir(), "vt.airlock")
	if err := os.WriteFile(whole, cat, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{outDir, vols[0], vols[len(vols)-1], whole} {
		if code, _, stderr := runCLI(t, nil, "verify", "-q", arg, "-p", pol); code != 0 {
			t.Fatalf("verify %s: exit %d: %s", arg, code, stderr)
		}
	}
	if code, _, stderr := runCLI(t, nil, "inspect", outDir); code != 0 {
		t.Fatalf("inspect of the set: exit %d: %s", code, stderr)
	}
	// A courier checks volume 3 with only volume 1's head at hand.
	courier := t.TempDir()
	for _, v := range []string{vols[0], vols[2]} {
		b, _ := os.ReadFile(v)
		os.WriteFile(filepath.Join(courier, filepath.Base(v)), b, 0o644)
	}
	code, stdout, stderr = runCLI(t, nil, "verify", filepath.Join(courier, filepath.Base(vols[0])), "--volume", filepath.Join(courier, filepath.Base(vols[2])), "-p", pol)
	if code != 0 || !strings.Contains(stdout, "VERIFIED volume 3 of") {
		t.Fatalf("verify --volume: exit %d: %s %s", code, stdout, stderr)
	}

	// Without volume 1, or with a FIFO in its place, --volume refuses the
	// set as verify does: exit 3, and a JSON report with --json.
	for _, spoil := range []func(p string){
		func(p string) { os.Remove(p) },
		func(p string) { os.Remove(p); syscall.Mkfifo(p, 0o644) },
	} {
		lone := t.TempDir()
		for _, v := range []string{vols[0], vols[2]} {
			b, _ := os.ReadFile(v)
			os.WriteFile(filepath.Join(lone, filepath.Base(v)), b, 0o644)
		}
		spoil(filepath.Join(lone, filepath.Base(vols[0])))
		code, stdout, stderr := runCLI(t, nil, "verify", lone, "--volume", filepath.Join(lone, filepath.Base(vols[2])), "-p", pol, "--json")
		var report map[string]any
		if code != 3 || json.Unmarshal([]byte(stdout), &report) != nil || !strings.Contains(stdout, "volume 1") {
			t.Fatalf("verify --volume without volume 1: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	}

	reg := testkit.Start(t)
	root := filepath.Join(t.TempDir(), "root")
	damaged := []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"missing", func(dir string) { os.Remove(filepath.Join(dir, filepath.Base(vols[1]))) }, "volume 2 of"},
		{"corrupt", func(dir string) {
			p := filepath.Join(dir, filepath.Base(vols[1]))
			b, _ := os.ReadFile(p)
			b[len(b)/3] ^= 1
			os.WriteFile(p, b, 0o644)
		}, "volume 2 of"},
		// The last byte of volume 3 is a frame's zstd checksum: the frame
		// still decodes to the signed content, but the set is not the
		// one signed, and verify refuses it as mirror and install do.
		{"checksum changed", func(dir string) {
			p := filepath.Join(dir, filepath.Base(vols[2]))
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 1
			os.WriteFile(p, b, 0o644)
		}, "volume 3 of"},
		{"FIFO", func(dir string) {
			p := filepath.Join(dir, filepath.Base(vols[1]))
			os.Remove(p)
			syscall.Mkfifo(p, 0o644)
		}, "not a regular file"},
	}
	for _, d := range damaged {
		dir := t.TempDir()
		for _, v := range vols {
			b, _ := os.ReadFile(v)
			os.WriteFile(filepath.Join(dir, filepath.Base(v)), b, 0o644)
		}
		d.damage(dir)
		for _, args := range [][]string{
			{"verify", dir, "-p", pol},
			{"mirror", dir, "--to", reg.Host + "/site", "-p", pol},
			{"install", dir, "--root", root, "-p", pol},
		} {
			code, _, stderr := runCLI(t, nil, args...)
			if code != 3 || !strings.Contains(stderr, d.want) {
				t.Fatalf("%s with a %s volume: exit %d, stderr %q; want 3 naming %q", args[0], d.name, code, stderr, d.want)
			}
			// --json reports the refusal too, on standard output.
			code, stdout, stderr := runCLI(t, nil, append(args, "--json")...)
			var report map[string]any
			if code != 3 || json.Unmarshal([]byte(stdout), &report) != nil || !strings.Contains(stdout, d.want) {
				t.Fatalf("%s --json with a %s volume: exit %d, stdout %q, stderr %q; want 3 and a JSON report naming %q", args[0], d.name, code, stdout, stderr, d.want)
			}
		}
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Fatalf("install with a %s volume created %s", d.name, root)
		}
		if cat := catalog(t, reg.Host); strings.Contains(cat, "site") {
			t.Fatalf("mirror with a %s volume wrote to the registry: %s", d.name, cat)
		}
	}
	// A single file that lost its last byte is refused before a blob is
	// pushed.
	short := filepath.Join(t.TempDir(), "short.airlock")
	os.WriteFile(short, cat[:len(cat)-1], 0o644)
	if code, _, stderr := runCLI(t, nil, "mirror", short, "--to", reg.Host+"/short", "-p", pol); code != 3 || !strings.Contains(stderr, "its signed head says") {
		t.Fatalf("mirror of a truncated file: exit %d: %s", code, stderr)
	}
	if cat := catalog(t, reg.Host); strings.Contains(cat, "short") {
		t.Fatalf("mirror of a truncated file wrote to the registry: %s", cat)
	}
	// The intact set mirrors and installs.
	if code, _, stderr := runCLI(t, nil, "mirror", "-q", outDir, "--to", reg.Host+"/site", "-p", pol); code != 0 {
		t.Fatalf("mirror of the set: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "install", "-q", vols[1], "--root", root, "-p", pol); code != 0 {
		t.Fatalf("install of the set: exit %d: %s", code, stderr)
	}
}

func catalog(t *testing.T, host string) string {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(bytes.TrimSpace(b))
}
