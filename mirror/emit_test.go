package mirror

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testkit"
)

// readTree returns every regular file under dir by slash path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustTarget(t *testing.T, s string, insecure bool) Target {
	t.Helper()
	to, err := ParseTarget(s, insecure)
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// TestEmitConfigLocalSources: images packed from oci: and docker-archive:
// (relative and absolute paths) get no node configuration at all, and are
// reported, unless a host for them is named; then that host maps to the
// prefix they were pushed under. (Finding 1 of issue 9: the old code
// wrote certs.d/docker.io or certs.d/oci:.)
func TestEmitConfigLocalSources(t *testing.T) {
	t.Parallel()
	to := mustTarget(t, "10.1.2.3:5000/site", false)
	maps := []Mapping{
		{Kind: "image", Source: "oci:./images/worker:2.1", Target: "10.1.2.3:5000/site/worker:2.1@sha256:aa"},
		{Kind: "image", Source: "oci:/abs/layout:demo/api:1.0", Target: "10.1.2.3:5000/site/demo/api:1.0@sha256:bb"},
		{Kind: "image", Source: "docker-archive:legacy.tar", Target: "10.1.2.3:5000/site/legacy:latest@sha256:cc"},
		{Kind: "model", Source: "model m", Target: "10.1.2.3:5000/site/models/m:1@sha256:dd"},
	}
	dir := t.TempDir()
	res, err := EmitConfig(NodeConfigOptions{Dir: dir, To: to, Mappings: maps})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{maps[0].Source, maps[1].Source, maps[2].Source}; !reflect.DeepEqual(res.Unmapped, want) {
		t.Errorf("unmapped %v, want %v", res.Unmapped, want)
	}
	if len(res.Registries) != 0 {
		t.Errorf("registries configured for local sources: %v", res.Registries)
	}
	tree := readTree(t, dir)
	for p, body := range tree {
		if strings.Contains(p, "certs.d") || strings.Contains(body, "[[registry]]") {
			t.Errorf("configuration for a local source: %s:\n%s", p, body)
		}
	}

	// With a host named for them: that host -> the prefix, over HTTPS.
	dir = t.TempDir()
	res, err = EmitConfig(NodeConfigOptions{Dir: dir, To: to, Mappings: maps, LocalHost: "apps.corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unmapped) != 0 || !reflect.DeepEqual(res.Registries, []string{"apps.corp.example"}) {
		t.Fatalf("result %+v", res)
	}
	tree = readTree(t, dir)
	toml := tree["containerd/certs.d/apps.corp.example/hosts.toml"]
	if !strings.Contains(toml, `[host."https://10.1.2.3:5000/v2/site"]`) || !strings.Contains(toml, `server = "https://apps.corp.example"`) {
		t.Errorf("hosts.toml:\n%s", toml)
	}
	if conf := tree["registries.conf.d/airlock-mirror.conf"]; !strings.Contains(conf, `prefix = "apps.corp.example"`) || !strings.Contains(conf, `location = "10.1.2.3:5000/site"`) {
		t.Errorf("registries.conf:\n%s", conf)
	}
	if _, err := EmitConfig(NodeConfigOptions{Dir: t.TempDir(), To: to, Mappings: maps, LocalHost: "https://x/y"}); !errors.Is(err, ErrNodeConfig) {
		t.Errorf("a malformed local host: %v", err)
	}
}

// TestEmitConfigTLS: a registry on a private address that is not named
// insecure stays HTTPS with verification, and a CA file becomes a ca entry
// for containerd and certs.d/HOST/ca.crt for podman and CRI-O; plain HTTP
// only when asked (finding 2 of issue 9).
func TestEmitConfigTLS(t *testing.T) {
	t.Parallel()
	sec := testkit.StartSecure(t) // only for a real CA file
	maps := []Mapping{{Kind: "image", Source: "registry.example.com/payments/api:1.4.2"}, {Kind: "image", Source: "nginx:1.25"}}
	for _, host := range []string{"127.0.0.1:5000", "192.168.7.1:5000", "registry.site"} {
		dir := t.TempDir()
		to := mustTarget(t, host+"/mirror", false)
		if _, err := EmitConfig(NodeConfigOptions{Dir: dir, To: to, Mappings: maps, CAFile: sec.CAFile}); err != nil {
			t.Fatal(err)
		}
		tree := readTree(t, dir)
		caName := strings.ReplaceAll(host, ":", "_") + "-ca.crt"
		ca, _ := os.ReadFile(sec.CAFile)
		for _, src := range []string{"registry.example.com", "docker.io"} {
			toml := tree["containerd/certs.d/"+src+"/hosts.toml"]
			for _, s := range []string{`[host."https://` + host + `/v2/mirror"]`, `ca = "` + caName + `"`} {
				if !strings.Contains(toml, s) {
					t.Errorf("%s: %s hosts.toml lacks %q:\n%s", host, src, s, toml)
				}
			}
			if strings.Contains(toml, "skip_verify") || strings.Contains(toml, "http://") {
				t.Errorf("%s: %s hosts.toml weakens TLS:\n%s", host, src, toml)
			}
			if tree["containerd/certs.d/"+src+"/"+caName] != string(ca) {
				t.Errorf("%s: containerd CA copy for %s differs", host, src)
			}
		}
		if !strings.Contains(tree["containerd/certs.d/docker.io/hosts.toml"], `server = "https://registry-1.docker.io"`) {
			t.Errorf("docker.io server:\n%s", tree["containerd/certs.d/docker.io/hosts.toml"])
		}
		if tree["containers/certs.d/"+host+"/ca.crt"] != string(ca) {
			t.Errorf("%s: no podman CA at containers/certs.d/%s/ca.crt: %v", host, host, slices.Collect(mapKeys(tree)))
		}
		if conf := tree["registries.conf.d/airlock-mirror.conf"]; strings.Contains(conf, "insecure") {
			t.Errorf("%s: registries.conf marks the mirror insecure:\n%s", host, conf)
		}
	}

	// Named insecure: plain HTTP, insecure for podman, no CA copied.
	dir := t.TempDir()
	if _, err := EmitConfig(NodeConfigOptions{Dir: dir, To: mustTarget(t, "registry.lab:5000", true), Mappings: maps, PlainHTTP: true, CAFile: sec.CAFile}); err != nil {
		t.Fatal(err)
	}
	tree := readTree(t, dir)
	if toml := tree["containerd/certs.d/registry.example.com/hosts.toml"]; !strings.Contains(toml, `[host."http://registry.lab:5000/v2"]`) || strings.Contains(toml, "ca =") {
		t.Errorf("plain HTTP hosts.toml:\n%s", toml)
	}
	if conf := tree["registries.conf.d/airlock-mirror.conf"]; !strings.Contains(conf, "insecure = true") {
		t.Errorf("plain HTTP registries.conf:\n%s", conf)
	}
	if _, ok := tree["containers/certs.d/registry.lab:5000/ca.crt"]; ok {
		t.Error("a CA copied for a plain-HTTP mirror")
	}

	// A file that is not a CA is refused before anything is written.
	bad := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	dir = t.TempDir()
	if _, err := EmitConfig(NodeConfigOptions{Dir: dir, To: mustTarget(t, "registry.site", false), Mappings: maps, CAFile: bad}); !errors.Is(err, ErrNodeConfig) {
		t.Errorf("not a CA: %v", err)
	}
	if len(readTree(t, dir)) != 0 {
		t.Error("files written although the CA was refused")
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestEmitConfigMerges: a second bundle's configuration into the same
// directory keeps the first's in both runtimes' files; the same source in
// another prefix becomes a second mirror; rerunning changes no byte; a
// hosts.toml that airlock did not write is refused (finding 3 of issue 9).
func TestEmitConfigMerges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	to := mustTarget(t, "registry.site/mirror", false)
	first := []Mapping{{Kind: "image", Source: "registry.example.com/payments/api:1.4.2"}}
	second := []Mapping{{Kind: "image", Source: "quay.io/team/tool:2"}, {Kind: "image", Source: "registry.example.com/other/x:1"}}
	if _, err := EmitConfig(NodeConfigOptions{Dir: dir, To: to, Mappings: first}); err != nil {
		t.Fatal(err)
	}
	res, err := EmitConfig(NodeConfigOptions{Dir: dir, To: to, Mappings: second})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"quay.io", "registry.example.com"}; !reflect.DeepEqual(res.Registries, want) {
		t.Errorf("registries %v, want %v", res.Registries, want)
	}
	tree := readTree(t, dir)
	conf := tree["registries.conf.d/airlock-mirror.conf"]
	for _, h := range []string{"quay.io", "registry.example.com"} {
		if !strings.Contains(conf, `prefix = "`+h+`"`) {
			t.Errorf("registries.conf lost %s:\n%s", h, conf)
		}
		if _, ok := tree["containerd/certs.d/"+h+"/hosts.toml"]; !ok {
			t.Errorf("no hosts.toml for %s", h)
		}
	}
	if strings.Count(conf, "[[registry.mirror]]") != 2 {
		t.Errorf("mirror entries duplicated:\n%s", conf)
	}

	// The same source into another prefix: two mirrors, first one first.
	other := mustTarget(t, "registry.site/other", false)
	if _, err := EmitConfig(NodeConfigOptions{Dir: dir, To: other, Mappings: first}); err != nil {
		t.Fatal(err)
	}
	tree = readTree(t, dir)
	toml := tree["containerd/certs.d/registry.example.com/hosts.toml"]
	a, b := strings.Index(toml, "https://registry.site/v2/mirror"), strings.Index(toml, "https://registry.site/v2/other")
	if a < 0 || b < a {
		t.Errorf("two mirrors for one source, in order:\n%s", toml)
	}

	// Rerunning with the same input writes the same bytes.
	for _, run := range []struct {
		to   Target
		maps []Mapping
	}{{to, first}, {to, second}, {other, first}} {
		if _, err := EmitConfig(NodeConfigOptions{Dir: dir, To: run.to, Mappings: run.maps}); err != nil {
			t.Fatal(err)
		}
	}
	if again := readTree(t, dir); !reflect.DeepEqual(again, tree) {
		t.Errorf("rerun changed the files:\nbefore %v\nafter  %v", tree, again)
	}

	// An operator's own hosts.toml is never replaced.
	own := filepath.Join(dir, "containerd", "certs.d", "ghcr.io", "hosts.toml")
	os.MkdirAll(filepath.Dir(own), 0o755)
	os.WriteFile(own, []byte("server = \"https://ghcr.io\"\n"), 0o644)
	_, err = EmitConfig(NodeConfigOptions{Dir: dir, To: to, Mappings: []Mapping{{Kind: "image", Source: "ghcr.io/x/y:1"}}})
	if !errors.Is(err, ErrNodeConfigForeign) {
		t.Errorf("foreign hosts.toml: %v", err)
	}
	if b, _ := os.ReadFile(own); string(b) != "server = \"https://ghcr.io\"\n" {
		t.Errorf("foreign hosts.toml changed: %s", b)
	}
}

// TestEmitConfigKeepsOlderOutput: a directory written by an airlock that
// kept no airlock-nodes.json (only registries.conf and hosts.toml) is
// merged too: its redirects stay in both runtimes' files.
func TestEmitConfigKeepsOlderOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := `# Written by airlock mirror: pull these registries' images from the site mirror.

[[registry]]
prefix = "127.0.0.1:46327"
location = "127.0.0.1:46327"

[[registry.mirror]]
location = "127.0.0.1:5000/mirror"
insecure = true
`
	p := filepath.Join(dir, "registries.conf.d", "airlock-mirror.conf")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(old), 0o644)
	res, err := EmitConfig(NodeConfigOptions{Dir: dir, To: mustTarget(t, "registry.site/m", false), Mappings: []Mapping{{Kind: "image", Source: "quay.io/a/b:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:46327", "quay.io"}; !reflect.DeepEqual(res.Registries, want) {
		t.Errorf("registries %v, want %v", res.Registries, want)
	}
	tree := readTree(t, dir)
	if toml := tree["containerd/certs.d/127.0.0.1:46327/hosts.toml"]; !strings.Contains(toml, `[host."http://127.0.0.1:5000/v2/mirror"]`) {
		t.Errorf("the older redirect is not in hosts.toml:\n%s", toml)
	}
	if conf := tree["registries.conf.d/airlock-mirror.conf"]; !strings.Contains(conf, `location = "127.0.0.1:5000/mirror"`) || !strings.Contains(conf, `prefix = "quay.io"`) {
		t.Errorf("registries.conf:\n%s", conf)
	}
	// Something airlock never writes is refused, not guessed at.
	dir = t.TempDir()
	p = filepath.Join(dir, "registries.conf.d", "airlock-mirror.conf")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(old+"blocked = true\n"), 0o644)
	if _, err := EmitConfig(NodeConfigOptions{Dir: dir, To: mustTarget(t, "registry.site/m", false), Mappings: []Mapping{{Kind: "image", Source: "quay.io/a/b:1"}}}); !errors.Is(err, ErrNodeConfig) {
		t.Errorf("an edited file: %v", err)
	}
}

// FuzzEmitConfigExisting: whatever an emit directory holds (a record or an
// older registries.conf), EmitConfig fails with ErrNodeConfig or writes
// configuration it can read back, and never panics.
func FuzzEmitConfigExisting(f *testing.F) {
	f.Add(false, []byte(`{"schemaVersion":1,"registries":[{"host":"quay.io","mirrors":[{"registry":"registry.site","path":"m"}]}]}`))
	f.Add(false, []byte(`{"schemaVersion":1,"registries":[{"host":"../x","mirrors":[]}]}`))
	f.Add(true, []byte("# Written by airlock mirror: x\n[[registry]]\nprefix = \"a.io\"\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"m.site:5000/p\"\ninsecure = true\n"))
	f.Add(true, []byte("# Written by airlock mirror: x\n[[registry.mirror]]\nlocation = \"../../etc\"\n"))
	f.Fuzz(func(t *testing.T, conf bool, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, nodeStateFile)
		if conf {
			p = filepath.Join(dir, filepath.FromSlash(registriesConf))
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		os.WriteFile(p, data, 0o644)
		to, _ := ParseTarget("registry.site/m", false)
		_, err := EmitConfig(NodeConfigOptions{Dir: dir, To: to, Mappings: []Mapping{{Kind: "image", Source: "quay.io/a/b:1"}}})
		if err != nil {
			if !errors.Is(err, ErrNodeConfig) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		if _, err := readNodeState(dir); err != nil {
			t.Fatalf("written record does not read back: %v", err)
		}
		for p := range readTree(t, dir) {
			if strings.Contains(p, "..") {
				t.Fatalf("wrote outside its layout: %s", p)
			}
		}
	})
}
