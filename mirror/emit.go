package mirror

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/bundle"

	"github.com/airlock-dev/airlock/internal/atomicfile"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// Node configuration errors.
var (
	// ErrNodeConfig reports node configuration that cannot be written as asked.
	ErrNodeConfig = errors.New("node configuration")
	// ErrNodeConfigForeign reports a file in the emit directory that airlock
	// did not write and will not overwrite.
	ErrNodeConfigForeign = errors.New("file not written by airlock")
)

// NodeConfigOptions says what EmitConfig writes. Dir and To are required.
type NodeConfigOptions struct {
	// Dir receives the configuration; created if missing.
	Dir string
	// To is the registry and prefix that was mirrored into.
	To Target
	// KeepRegistryHost must be what the mirror ran with (it changes paths).
	KeepRegistryHost bool
	// Mappings are the mirror's result: only images are configured.
	Mappings []Mapping
	// PlainHTTP makes nodes reach the mirror over plain HTTP (insecure in
	// registries.conf). Only for a registry the user named as plain HTTP;
	// false means HTTPS with certificate verification.
	PlainHTTP bool
	// CAFile is a PEM file of the CA nodes need to verify the mirror's
	// certificate; it is copied next to the configuration. "" copies none
	// (the nodes' system roots must trust the mirror).
	CAFile string
	// LocalHost is the registry host under which nodes name the images
	// packed from oci: and docker-archive: sources, which have no registry
	// of their own; "" configures nothing for them.
	LocalHost string
}

// NodeConfigResult says what EmitConfig wrote.
type NodeConfigResult struct {
	// Files are the files written, in order.
	Files []string `json:"files"`
	// Registries are the registry hosts nodes now pull through a mirror,
	// from this run and earlier runs into the same directory.
	Registries []string `json:"registries"`
	// Unmapped are image sources of this run with no configuration: packed
	// from oci: or docker-archive: while no LocalHost was given.
	Unmapped []string `json:"unmapped,omitempty"`
}

// Names inside the emit directory.
const (
	nodeStateFile  = "airlock-nodes.json"
	registriesConf = "registries.conf.d/airlock-mirror.conf"
	nodeMarker     = "# Written by airlock mirror"
)

// nodeState is the emit directory's record of every redirect airlock wrote
// there; every file is regenerated from it, so runs of different bundles
// into one directory add up instead of replacing each other.
type nodeState struct {
	SchemaVersion int           `json:"schemaVersion"`
	Registries    []nodeSources `json:"registries"`
}

// nodeSources is one registry as nodes name it and the mirrors serving it,
// in the order they are tried.
type nodeSources struct {
	Host    string       `json:"host"`
	Mirrors []nodeMirror `json:"mirrors"`
}

// nodeMirror is one mirror location: a registry and a repository path.
type nodeMirror struct {
	Registry  string `json:"registry"`
	Path      string `json:"path,omitempty"`
	PlainHTTP bool   `json:"plainHTTP,omitempty"`
}

// location is REGISTRY[/PATH], as registries.conf writes a mirror.
func (m nodeMirror) location() string { return strings.TrimSuffix(m.Registry+"/"+m.Path, "/") }

// EmitConfig writes node configuration so that container runtimes keep
// pulling the original image names and get them from the mirror:
//
//	DIR/containerd/certs.d/<registry>/hosts.toml   containerd
//	DIR/containerd/certs.d/<registry>/<mirror>.crt  containerd, with a CA
//	DIR/registries.conf.d/airlock-mirror.conf      CRI-O, podman, skopeo (containers-registries.conf v2)
//	DIR/containers/certs.d/<mirror>/ca.crt         CRI-O, podman, skopeo, with a CA
//	DIR/airlock-nodes.json                         what airlock wrote here
//
// Each image pushed from a registry is configured under that registry's
// host; images from oci: and docker-archive: sources only under
// opts.LocalHost. Earlier runs into the same directory are kept (recorded
// in airlock-nodes.json); running again with the same input changes
// nothing. A hosts.toml that airlock did not write is never replaced.
func EmitConfig(opts NodeConfigOptions) (*NodeConfigResult, error) {
	if opts.Dir == "" || opts.To.Registry.Name() == "" {
		return nil, fmt.Errorf("%w: no directory or no target registry", ErrNodeConfig)
	}
	var localHost string
	if opts.LocalHost != "" {
		r, err := name.NewRegistry(opts.LocalHost, name.StrictValidation)
		if err != nil || strings.ContainsAny(opts.LocalHost, "/@") {
			return nil, fmt.Errorf("%w: %q is not a registry host[:port]", ErrNodeConfig, opts.LocalHost)
		}
		localHost = r.RegistryStr()
	}
	var ca []byte
	if opts.CAFile != "" && !opts.PlainHTTP {
		b, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %w", ErrNodeConfig, err)
		}
		if ca, err = certificatesOnly(b); err != nil {
			return nil, fmt.Errorf("%w: CA file %s: %w", ErrNodeConfig, opts.CAFile, err)
		}
	}
	state, err := readNodeState(opts.Dir)
	if err != nil {
		return nil, err
	}
	res := &NodeConfigResult{}
	mirrorHost := opts.To.Registry.Name()
	for _, mp := range opts.Mappings {
		if mp.Kind != "image" {
			continue
		}
		m := nodeMirror{Registry: mirrorHost, Path: opts.To.Prefix, PlainHTTP: opts.PlainHTTP}
		var host string
		if isLocalSource(mp.Source) {
			if localHost == "" {
				res.Unmapped = append(res.Unmapped, mp.Source)
				continue
			}
			host = localHost // placed at PREFIX/NAME whatever KeepRegistryHost says
		} else {
			r, err := name.ParseReference(mp.Source)
			if err != nil {
				return nil, fmt.Errorf("%w: image %s: %w", ErrNodeConfig, mp.Source, err)
			}
			host = r.Context().RegistryStr()
			if opts.KeepRegistryHost {
				m.Path = strings.Trim(m.Path+"/"+bundle.HostPath(host), "/")
			}
		}
		state.add(nodeName(host), m)
	}
	if err := state.checkForeign(opts.Dir); err != nil {
		return nil, err // before anything is written
	}
	if ca != nil {
		p := filepath.Join(opts.Dir, "containers", "certs.d", mirrorHost, "ca.crt")
		if err := writeNodeFile(p, ca); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, p)
	}
	files, err := state.write(opts.Dir)
	if err != nil {
		return nil, err
	}
	res.Files = append(res.Files, files...)
	for _, r := range state.Registries {
		res.Registries = append(res.Registries, r.Host)
	}
	return res, nil
}

// isLocalSource reports whether an image was packed from a local source
// (no registry host to configure).
func isLocalSource(ref string) bool {
	return strings.HasPrefix(ref, "oci:") || strings.HasPrefix(ref, "docker-archive:")
}

// nodeName is a registry as nodes name it: Docker Hub is docker.io.
func nodeName(registry string) string {
	if registry == name.DefaultRegistry {
		return "docker.io"
	}
	return registry
}

// certificatesOnly returns the CERTIFICATE blocks of a PEM file, each
// parsed; anything else (a private key by mistake) is left out.
func certificatesOnly(b []byte) ([]byte, error) {
	var out bytes.Buffer
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, err
		}
		if err := pem.Encode(&out, blk); err != nil {
			return nil, err
		}
	}
	if out.Len() == 0 {
		return nil, errors.New("no PEM certificates in it")
	}
	return out.Bytes(), nil
}

func readNodeState(dir string) (*nodeState, error) {
	p := filepath.Join(dir, nodeStateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return importRegistriesConf(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNodeConfig, err)
	}
	var s nodeState
	if err := strictjson.Unmarshal(b, &s); err != nil || s.SchemaVersion != 1 {
		return nil, fmt.Errorf("%w: %s is not airlock's record of node configuration (schemaVersion 1): %w", ErrNodeConfig, p, err)
	}
	for _, r := range s.Registries {
		if !validNodeHost(r.Host) {
			return nil, fmt.Errorf("%w: %s: invalid registry %q", ErrNodeConfig, p, r.Host)
		}
		for _, m := range r.Mirrors {
			if !validNodeHost(m.Registry) || (m.Path != "" && !validRepoPath(m.Path)) {
				return nil, fmt.Errorf("%w: %s: invalid mirror %q", ErrNodeConfig, p, m.location())
			}
		}
	}
	return &s, nil
}

// validNodeHost accepts a registry host[:port] that is safe as a directory
// name and in TOML strings.
func validNodeHost(h string) bool {
	if h == "" || h == "." || h == ".." || strings.ContainsAny(h, "/\\\"'@ \t\r\n") {
		return false
	}
	_, err := name.NewRegistry(h, name.StrictValidation)
	return err == nil
}

func validRepoPath(p string) bool {
	_, err := name.NewRepository("example.com/" + p)
	return err == nil
}

// add records mirror m for host; a mirror already listed keeps its place
// and takes the new scheme.
func (s *nodeState) add(host string, m nodeMirror) {
	i := slices.IndexFunc(s.Registries, func(r nodeSources) bool { return r.Host == host })
	if i < 0 {
		s.Registries = append(s.Registries, nodeSources{Host: host})
		sort.Slice(s.Registries, func(a, b int) bool { return s.Registries[a].Host < s.Registries[b].Host })
		i = slices.IndexFunc(s.Registries, func(r nodeSources) bool { return r.Host == host })
	}
	r := &s.Registries[i]
	j := slices.IndexFunc(r.Mirrors, func(x nodeMirror) bool { return x.Registry == m.Registry && x.Path == m.Path })
	if j < 0 {
		r.Mirrors = append(r.Mirrors, m)
		return
	}
	r.Mirrors[j].PlainHTTP = m.PlainHTTP
}

// checkForeign fails when a file write would replace is not airlock's.
func (s *nodeState) checkForeign(dir string) error {
	for _, r := range s.Registries {
		if err := refuseForeign(filepath.Join(dir, "containerd", "certs.d", r.Host, "hosts.toml")); err != nil {
			return err
		}
	}
	return refuseForeign(filepath.Join(dir, filepath.FromSlash(registriesConf)))
}

// write regenerates every file from the state, then the state itself.
func (s *nodeState) write(dir string) ([]string, error) {
	if err := s.checkForeign(dir); err != nil {
		return nil, err
	}
	var files []string
	var conf strings.Builder
	conf.WriteString(nodeMarker + ": pull these registries' images from the site mirror.\n")
	conf.WriteString("# Regenerated from " + nodeStateFile + " by every airlock mirror --emit-config into this directory.\n")
	for _, r := range s.Registries {
		hostsDir := filepath.Join(dir, "containerd", "certs.d", r.Host)
		server := "https://" + r.Host
		if r.Host == "docker.io" {
			server = "https://registry-1.docker.io"
		}
		var toml strings.Builder
		fmt.Fprintf(&toml, "%s: pull %s images from the site mirror.\nserver = %q\n", nodeMarker, r.Host, server)
		fmt.Fprintf(&conf, "\n[[registry]]\nprefix = %q\nlocation = %q\n", r.Host, r.Host)
		for _, m := range r.Mirrors {
			scheme := "https"
			if m.PlainHTTP {
				scheme = "http"
			}
			api := strings.TrimSuffix(fmt.Sprintf("%s://%s/v2/%s", scheme, m.Registry, m.Path), "/")
			fmt.Fprintf(&toml, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n", api)
			fmt.Fprintf(&conf, "\n[[registry.mirror]]\nlocation = %q\n", m.location())
			if m.PlainHTTP {
				conf.WriteString("insecure = true\n")
				continue
			}
			ca, err := os.ReadFile(filepath.Join(dir, "containers", "certs.d", m.Registry, "ca.crt"))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrNodeConfig, err)
			}
			caName := strings.ReplaceAll(m.Registry, ":", "_") + "-ca.crt"
			if err := writeNodeFile(filepath.Join(hostsDir, caName), ca); err != nil {
				return nil, err
			}
			files = append(files, filepath.Join(hostsDir, caName))
			fmt.Fprintf(&toml, "  ca = %q\n", caName)
		}
		p := filepath.Join(hostsDir, "hosts.toml")
		if err := writeNodeFile(p, []byte(toml.String())); err != nil {
			return nil, err
		}
		files = append(files, p)
	}
	p := filepath.Join(dir, filepath.FromSlash(registriesConf))
	if err := refuseForeign(p); err != nil {
		return nil, err
	}
	if err := writeNodeFile(p, []byte(conf.String())); err != nil {
		return nil, err
	}
	files = append(files, p)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeNodeFile(filepath.Join(dir, nodeStateFile), append(b, '\n')); err != nil {
		return nil, err
	}
	return files, nil
}

// refuseForeign fails when p exists and airlock did not write it.
func refuseForeign(p string) error {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNodeConfig, err)
	}
	if !bytes.HasPrefix(b, []byte(nodeMarker)) {
		return fmt.Errorf("%w: %w: %s; move it away or emit into another directory", ErrNodeConfig, ErrNodeConfigForeign, p)
	}
	return nil
}

func writeNodeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrNodeConfig, err)
	}
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
		return nil // unchanged: leave the file (and its mtime) alone
	}
	if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("%w: %w", ErrNodeConfig, err)
	}
	return nil
}

// importRegistriesConf reads the registries.conf that an airlock without
// airlock-nodes.json wrote into dir, so that its redirects are kept; no
// file means an empty state. Only airlock's own layout is understood.
func importRegistriesConf(dir string) (*nodeState, error) {
	s := &nodeState{SchemaVersion: 1}
	p := filepath.Join(dir, filepath.FromSlash(registriesConf))
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNodeConfig, err)
	}
	if !bytes.HasPrefix(b, []byte(nodeMarker)) {
		return nil, fmt.Errorf("%w: %w: %s; move it away or emit into another directory", ErrNodeConfig, ErrNodeConfigForeign, p)
	}
	bad := func(n int, line string) error {
		return fmt.Errorf("%w: %s:%d: %q is not what airlock writes; remove the file to start afresh", ErrNodeConfig, p, n, line)
	}
	var host string
	var m *nodeMirror
	flush := func() {
		if m != nil {
			s.add(host, *m)
			m = nil
		}
	}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		key, val, isKV := strings.Cut(line, " = ")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "[[registry]]":
			flush()
			host = ""
		case line == "[[registry.mirror]]":
			flush()
			if host == "" {
				return nil, bad(n+1, line)
			}
			m = &nodeMirror{}
		case isKV && key == "insecure" && val == "true" && m != nil:
			m.PlainHTTP = true
		case isKV && (key == "prefix" || key == "location"):
			v, err := strconv.Unquote(val)
			if err != nil {
				return nil, bad(n+1, line)
			}
			switch {
			case m != nil && key == "location":
				m.Registry, m.Path, _ = strings.Cut(v, "/")
				if !validNodeHost(m.Registry) || (m.Path != "" && !validRepoPath(m.Path)) {
					return nil, bad(n+1, line)
				}
			case m == nil && key == "prefix":
				if !validNodeHost(v) {
					return nil, bad(n+1, line)
				}
				host = v
			case m == nil && key == "location" && v == host:
			default:
				return nil, bad(n+1, line)
			}
		default:
			return nil, bad(n+1, line)
		}
	}
	flush()
	return s, nil
}
