package sample

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultRegistryHost is the placeholder registry host of the committed
// copy of the sample release in testdata/sample.
const DefaultRegistryHost = "registry.example.com"

// releaseFile is one file of the sample release, by slash path.
type releaseFile struct {
	path string
	body []byte
}

// WriteRelease writes the sample release source tree into dir, creating it
// and any missing parents. registryHost ("host[:port]") prefixes every
// image reference in airlock.yaml; it is checked and ErrInvalidHost is
// returned for anything that is not a bare registry host; the SBOM purls
// name the same host. Files are written
// with mode 0644 and directories with mode 0755; existing files are
// replaced. The bytes depend only on registryHost.
func WriteRelease(dir, registryHost string) error {
	if err := checkHost(registryHost); err != nil {
		return err
	}
	files, err := releaseFiles(registryHost)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sample: release dir: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("sample: release dir: %w", err)
	}
	defer root.Close()
	for _, f := range files {
		if d := path.Dir(f.path); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("sample: release dir %s: %w", d, err)
			}
			if err := root.Chmod(d, 0o755); err != nil {
				return fmt.Errorf("sample: release dir %s: %w", d, err)
			}
		}
		if err := root.WriteFile(f.path, f.body, 0o644); err != nil {
			return fmt.Errorf("sample: release file %s: %w", f.path, err)
		}
		if err := root.Chmod(f.path, 0o644); err != nil {
			return fmt.Errorf("sample: release file %s: %w", f.path, err)
		}
	}
	return nil
}

// checkHost returns ErrInvalidHost unless host is a bare "host[:port]" that
// go-containerregistry reads back as the registry of host/demo/api:1.0.
func checkHost(host string) error {
	if strings.ContainsAny(host, " \t\r\n\"'#/") {
		return fmt.Errorf("sample: registry host %q: %w", host, ErrInvalidHost)
	}
	_, err := hostTag(host, Image{Repo: "demo/api", Tag: "1.0"})
	return err
}

// releaseFiles returns every file of the sample release.
func releaseFiles(host string) ([]releaseFile, error) {
	model, err := safetensors()
	if err != nil {
		return nil, err
	}
	text := func(s string) []byte { return []byte(strings.ReplaceAll(s, "${REGISTRY}", host)) }
	return []releaseFile{
		{"airlock.yaml", text(airlockYAML)},
		{"config/app.yaml", text(appYAML)},
		{"config/logging.json", text(loggingJSON)},
		{"models/tiny-classifier/README.md", text(modelReadme)},
		{"models/tiny-classifier/config.json", text(modelConfig)},
		{"models/tiny-classifier/model.safetensors", model},
		{"models/tiny-classifier/tokenizer.json", text(tokenizerJSON)},
		{"config/conf.d/10-server.conf", text(confServer)},
		{"config/conf.d/20-limits.conf", text(confLimits)},
		{"config/conf.d/20-limits.conf.bak", text(confBackup)},
		{"config/conf.d/tls/ciphers.conf", text(confCiphers)},
		{"charts/demo-app/Chart.yaml", text(chartYAML)},
		{"charts/demo-app/values.yaml", text(chartValues)},
		{"charts/demo-app/templates/deployment.yaml", text(chartDeployment)},
		{"charts/demo-app/templates/NOTES.txt", text(chartNotes)},
		{"sbom/api.spdx.json", text(apiSPDX)},
		{"sbom/worker.cdx.json", text(workerCDX)},
	}, nil
}

// AddModel adds to the release in dir (written by WriteRelease) a model
// NAME, at models/NAME, of one file weights.bin holding size pseudo-random
// bytes from seed: a model large enough to be uploaded in chunks, made
// without the sample's generators.
func AddModel(dir, name string, size int64, seed byte) error {
	md := filepath.Join(dir, "models", name)
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(md, "weights.bin"))
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{seed}), size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	spec := filepath.Join(dir, "airlock.yaml")
	y, err := os.ReadFile(spec)
	if err != nil {
		return err
	}
	entry := "  - source: models/" + name + "\n    name: " + name + "\n    target: models/" + name + "\nfiles:\n"
	return os.WriteFile(spec, []byte(strings.Replace(string(y), "files:\n", entry, 1)), 0o644)
}
