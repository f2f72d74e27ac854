package mirror

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/internal/atomicfile"
)

// EmitConfig writes mirror configuration so that nodes keep pulling the
// original image names and get them from the mirror:
//
//	DIR/containerd/certs.d/<source host>/hosts.toml   (containerd)
//	DIR/registries.conf.d/airlock-mirror.conf         (CRI-O, podman: containers-registries.conf v2)
//
// One entry per source registry of the mirrored images.
func EmitConfig(dir string, to Target, keepHost bool, mappings []Mapping) ([]string, error) {
	hosts := map[string]bool{}
	for _, mp := range mappings {
		if mp.Kind != "image" {
			continue
		}
		r, err := name.ParseReference(mp.Source)
		if err != nil {
			continue // a local source (oci:, docker-archive:) has no registry to redirect
		}
		hosts[r.Context().RegistryStr()] = true
	}
	var sorted []string
	for h := range hosts {
		sorted = append(sorted, h)
	}
	sort.Strings(sorted)
	// Plain HTTP only where the user said so: go-containerregistry also
	// guesses HTTP for loopback and private addresses, which nodes must not.
	scheme := "https"
	if to.Insecure || to.Registry.Scheme() == "http" && isLoopback(to.Registry.RegistryStr()) {
		scheme = "http"
	}
	var written []string
	var conf strings.Builder
	conf.WriteString("# Written by airlock mirror: pull these registries' images from the site mirror.\n")
	for _, h := range sorted {
		path := strings.Trim(strings.Join([]string{to.Prefix, map[bool]string{true: hostPath(h), false: ""}[keepHost]}, "/"), "/")
		api := fmt.Sprintf("%s://%s/v2", scheme, to.Registry.Name())
		loc := to.Registry.Name()
		if path != "" {
			api += "/" + path
			loc += "/" + path
		}
		dirName, server := h, "https://"+h
		if h == name.DefaultRegistry { // index.docker.io
			dirName, server = "docker.io", "https://registry-1.docker.io"
		}
		toml := fmt.Sprintf(`# Written by airlock mirror: pull %[1]s images from the site mirror.
server = %[3]q

[host.%[2]q]
  capabilities = ["pull", "resolve"]
  override_path = true
`, dirName, api, server)
		if scheme == "http" {
			toml += "  skip_verify = true\n"
		}
		p := filepath.Join(dir, "containerd", "certs.d", dirName, "hosts.toml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(p, []byte(toml), 0o644); err != nil {
			return nil, err
		}
		written = append(written, p)
		fmt.Fprintf(&conf, "\n[[registry]]\nprefix = %q\nlocation = %q\n\n[[registry.mirror]]\nlocation = %q\n", dirName, dirName, loc)
		if scheme == "http" {
			conf.WriteString("insecure = true\n")
		}
	}
	p := filepath.Join(dir, "registries.conf.d", "airlock-mirror.conf")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(p, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	return append(written, p), nil
}

// isLoopback reports whether host[:port] names this machine.
func isLoopback(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
