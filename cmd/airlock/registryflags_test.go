package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// TestCredentialHelperOncePerRegistry runs pack, mirror and install
// --registry with a Docker config whose credsStore is a fake credential
// helper that logs each call: each registry's helper is asked once per run
// (finding 6 of issue 9: 59 calls in one mirror), and its credentials get
// through the registry's basic auth. Not parallel: PATH and DOCKER_CONFIG
// of the process are set, as a user's shell would.
func TestCredentialHelperOncePerRegistry(t *testing.T) {
	sec := testkit.StartSecure(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "calls.log")
	helper := "#!/bin/sh\nread -r server\necho \"$1 $server\" >> '" + logFile + "'\n" +
		"case \"$1\" in get) printf '{\"ServerURL\":\"%s\",\"Username\":\"" + sec.User + "\",\"Secret\":\"" + sec.Password + "\"}\\n' \"$server\";; *) exit 1;; esac\n"
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-airlocktest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	dockerDir := filepath.Join(dir, "docker")
	os.MkdirAll(dockerDir, 0o700)
	os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(`{"credsStore":"airlocktest"}`), 0o600)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DOCKER_CONFIG", dockerDir)
	env := map[string]string{"DOCKER_CONFIG": dockerDir, "AIRLOCK_PASSWORD": testPassword}
	calls := func() map[string]int {
		b, _ := os.ReadFile(logFile)
		os.Remove(logFile)
		n := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				n[l]++
			}
		}
		return n
	}

	b, pol, src, _ := goneSourceRelease(t, env)
	if got := calls(); len(got) != 1 || got["get "+src] != 1 {
		t.Errorf("pack: helper calls %v, want one get for %s", got, src)
	}
	code, _, stderr := runCLI(t, env, "mirror", b, "--to", sec.Host+"/site", "--ca-file", sec.CAFile, "--policy", pol, "-q")
	if code != 0 {
		t.Fatalf("mirror with the helper's credentials: exit %d: %s", code, stderr)
	}
	if got := calls(); len(got) != 1 || got["get "+sec.Host] != 1 {
		t.Errorf("mirror: helper calls %v, want one get for %s", got, sec.Host)
	}
	code, _, stderr = runCLI(t, env, "install", b, "--root", t.TempDir(), "--policy", pol, "--registry", sec.Host+"/inst", "--ca-file", sec.CAFile, "-q")
	if code != 0 {
		t.Fatalf("install --registry with the helper's credentials: exit %d: %s", code, stderr)
	}
	if got := calls(); len(got) != 1 || got["get "+sec.Host] != 1 {
		t.Errorf("install --registry: helper calls %v, want one get for %s", got, sec.Host)
	}
}

// TestRegistryFlagsAndHints: pack, mirror and install --registry take the
// same registry flags (--ca-file for a private CA, credentials from the
// Docker config or REGISTRY_AUTH_FILE), and a failure says what to do: an
// unknown authority -> --ca-file, 401 -> how to log in and which file was
// read, a refused connection -> is the registry up; --insecure-registry is
// never suggested when it was given (finding 5 of issue 9).
func TestRegistryFlagsAndHints(t *testing.T) {
	t.Parallel()
	sec := testkit.StartSecure(t)
	b, pol, _, _ := goneSourceRelease(t, nil)
	work := t.TempDir()
	good := map[string]string{"DOCKER_CONFIG": filepath.Join(work, "good")}
	goodFile := writeAuth(t, good["DOCKER_CONFIG"], sec.Host, sec.User, sec.Password)
	bad := map[string]string{"DOCKER_CONFIG": filepath.Join(work, "bad")}
	badFile := writeAuth(t, bad["DOCKER_CONFIG"], sec.Host, sec.User, "wrong")
	to := sec.Host + "/site"
	hint := func(stderr string) string {
		t.Logf("stderr: %s", stderr)
		_, h, ok := strings.Cut(stderr, "  hint: ")
		if !ok {
			return ""
		}
		return h
	}

	// Unknown authority: --ca-file.
	code, _, stderr := runCLI(t, good, "mirror", b, "--to", to, "--policy", pol, "-q")
	if h := hint(stderr); code != exitError || !strings.Contains(h, "--ca-file") || strings.Contains(h, "--insecure-registry") {
		t.Errorf("mirror without the CA: exit %d, stderr:\n%s", code, stderr)
	}
	// Wrong password: how to log in, and which file was read.
	code, _, stderr = runCLI(t, bad, "mirror", b, "--to", to, "--ca-file", sec.CAFile, "--policy", pol, "-q")
	if h := hint(stderr); code != exitError || !strings.Contains(h, "docker login "+sec.Host) || !strings.Contains(h, badFile) || !strings.Contains(h, "REGISTRY_AUTH_FILE") {
		t.Errorf("mirror with a wrong password: exit %d, stderr:\n%s", code, stderr)
	}
	// Nothing listening: is the registry up. Also with --insecure-registry
	// given, which is then not suggested again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	deadSpec := filepath.Join(work, "dead.yaml")
	os.WriteFile(deadSpec, []byte("name: dead\nversion: 1.0.0\nimages:\n  - ref: "+dead+"/demo/api:1.0\n"), 0o644)
	for _, args := range [][]string{
		{"pack", "-q", "-f", deadSpec, "-o", filepath.Join(work, "dead.airlock"), "--insecure-registry", dead},
		{"mirror", b, "--to", dead + "/x", "--policy", pol, "-q", "--retry-window", "1s"},
		{"mirror", b, "--to", dead + "/x", "--insecure-registry", dead, "--policy", pol, "-q", "--retry-window", "1s"},
		{"install", b, "--root", t.TempDir(), "--registry", dead + "/x", "--insecure-registry", dead, "--policy", pol, "-q", "--retry-window", "1s"},
	} {
		code, _, stderr = runCLI(t, good, args...)
		if h := hint(stderr); code != exitError || !strings.Contains(h, "is the registry up") || !strings.Contains(h, dead) || strings.Contains(stderr, "add --insecure-registry") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, stderr)
		}
	}

	// A good mirror, then pack from that private-CA registry.
	if code, _, stderr := runCLI(t, good, "mirror", b, "--to", to, "--ca-file", sec.CAFile, "--policy", pol, "-q"); code != 0 {
		t.Fatalf("mirror: %s", stderr)
	}
	spec := filepath.Join(work, "airlock.yaml")
	os.WriteFile(spec, []byte("name: again\nversion: 1.0.0\nimages:\n  - ref: "+to+"/demo/worker:1.0\n"), 0o644)
	out := filepath.Join(work, "again.airlock")
	code, _, stderr = runCLI(t, good, "pack", "-q", "-f", spec, "-o", out)
	if h := hint(stderr); code != exitError || !strings.Contains(h, "--ca-file") || strings.Contains(stderr, "--insecure-registry") {
		t.Errorf("pack from a private-CA registry without --ca-file: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "pack", "-q", "-f", spec, "-o", out, "--ca-file", sec.CAFile)
	if h := hint(stderr); code != exitError || !strings.Contains(h, "docker login") || !strings.Contains(h, "no credentials file") {
		t.Errorf("pack without credentials: exit %d, stderr:\n%s", code, stderr)
	}
	// Credentials from REGISTRY_AUTH_FILE, which wins over a Docker config.
	authOnly := map[string]string{"REGISTRY_AUTH_FILE": goodFile, "DOCKER_CONFIG": bad["DOCKER_CONFIG"]}
	if code, _, stderr := runCLI(t, authOnly, "pack", "-q", "-f", spec, "-o", out, "--ca-file", sec.CAFile); code != 0 {
		t.Errorf("pack with --ca-file and REGISTRY_AUTH_FILE: exit %d: %s", code, stderr)
	}
	missing := map[string]string{"REGISTRY_AUTH_FILE": filepath.Join(work, "nope.json")}
	if code, _, stderr := runCLI(t, missing, "pack", "-q", "-f", spec, "-o", out, "--ca-file", sec.CAFile); code != exitError || !strings.Contains(stderr, "REGISTRY_AUTH_FILE="+missing["REGISTRY_AUTH_FILE"]) {
		t.Errorf("pack with a missing REGISTRY_AUTH_FILE: exit %d: %s", code, stderr)
	}
}
