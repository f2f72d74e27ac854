package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// isolatedSide runs the operator's day: serve a registry, mirror into it,
// pull an image back by its original digest, install files and models,
// show the installed state, and refuse a replayed older bundle.
func isolatedSide(ctx context.Context, bin, work, bundlePath, policyPath, release, keysDir string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	data := filepath.Join(work, "registry")
	step("airlock serve --data %s --addr %s (the site has no registry; airlock brings one)", data, addr)
	stop, err := startServe(ctx, bin, addr, "--data", data)
	if err != nil {
		return err
	}
	defer stop()

	mapping := filepath.Join(work, "mapping.json")
	nodes := filepath.Join(work, "nodes")
	step("airlock mirror: verify and push in one pass into %s/site (airlock serve speaks plain HTTP here: --insecure-registry)", addr)
	if err := airlockRun(ctx, bin, "mirror", bundlePath, "--to", addr+"/site", "--insecure-registry", addr,
		"--policy", policyPath, "--report", mapping, "--emit-config", nodes,
		"--audit-log", filepath.Join(work, "mirror-audit.log")); err != nil {
		return err
	}
	if err := showNodeConfig(nodes); err != nil {
		return err
	}
	step("Mapping written by --report (%s)", mapping)
	raw, err := os.ReadFile(mapping)
	if err != nil {
		return err
	}
	fmt.Print(string(raw))

	var m struct {
		Mappings []struct{ Kind, Source, Target, Digest string } `json:"mappings"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	for _, mp := range m.Mappings {
		if mp.Kind != "chart" {
			continue
		}
		repo, _, _ := strings.Cut(mp.Target, "@")
		step("The chart is an OCI Helm chart at %s: helm pull oci://%s --version V --plain-http gets it", repo, repo[:strings.LastIndex(repo, ":")])
		ref, err := name.ParseReference(repo)
		if err != nil {
			return err
		}
		d, err := remote.Get(ref, remote.WithContext(ctx))
		if err != nil {
			return err
		}
		var man struct {
			Config struct {
				MediaType string `json:"mediaType"`
			} `json:"config"`
		}
		if err := json.Unmarshal(d.Manifest, &man); err != nil {
			return err
		}
		fmt.Printf("tag %s -> %s (%s, config %s): the digest the bundle carries\n", ref, d.Digest, d.MediaType, man.Config.MediaType)
		if d.Digest.String() != mp.Digest {
			return fmt.Errorf("the mirror serves %s for %s, the bundle carries %s", d.Digest, ref, mp.Digest)
		}
	}
	for _, mp := range m.Mappings {
		if mp.Kind != "image" {
			continue
		}
		repo := strings.SplitN(mp.Target, "@", 2)[0]
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		ref, err := name.ParseReference(repo + "@" + mp.Digest)
		if err != nil {
			return err
		}
		step("Pulling %s back from the mirror by its original digest", ref)
		d, err := remote.Get(ref, remote.WithContext(ctx))
		if err != nil {
			return err
		}
		fmt.Printf("got %s (%s, %d bytes): same digest as at the source\n", d.Digest, d.MediaType, d.Size)
		break
	}

	root := "demo-root"
	os.RemoveAll(root)
	step("airlock install: files, the directory tree and models into ./%s, atomically, with recorded state", root)
	if err := airlockRun(ctx, bin, "install", bundlePath, "--root", root, "--policy", policyPath); err != nil {
		return err
	}
	step("airlock status --root %s", root)
	if err := airlockRun(ctx, bin, "status", "--root", root); err != nil {
		return err
	}
	tree := filepath.Join(root, "current", "demo", "etc", "demo", "conf.d")
	step("The directory config/conf.d/ was installed as one tree at %s", tree)
	if err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			fmt.Printf("%s %6d %s\n", fi.Mode().Perm(), fi.Size(), p)
		}
		return err
	}); err != nil {
		return err
	}
	step("airlock check --root %s: every installed file, the tree's too, re-hashed against the state", root)
	if err := airlockRun(ctx, bin, "check", "--root", root); err != nil {
		return err
	}

	older := filepath.Join(work, "demo-older.airlock")
	step("Packing an older release of the same name (sequence 1), signed by release and ops")
	if err := airlockRun(ctx, bin, "pack", "-q", "-f", filepath.Join(release, "airlock.yaml"), "-o", older,
		"--key", filepath.Join(keysDir, "release.key"), "--key", filepath.Join(keysDir, "ops.key"), "--channel", "prod", "--sequence", "1"); err != nil {
		return err
	}
	step("Installing it must be refused: a replay of an older bundle (exit 3)")
	err = airlockRun(ctx, bin, "install", older, "--root", root, "--policy", policyPath)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		return fmt.Errorf("the older bundle was not refused with exit 3: %v", err)
	}
	fmt.Println("refused with exit status 3, as it must be")
	return nil
}

// showNodeConfig prints the node configuration --emit-config wrote: what
// containerd and podman/CRI-O nodes copy to pull the original names from
// the mirror.
func showNodeConfig(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(p) == "airlock-nodes.json" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		step("Node configuration written by --emit-config: %s", rel)
		fmt.Print(string(b))
		return nil
	})
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitRegistry(ctx context.Context, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("airlock serve did not answer on %s within 15 s", addr)
}

// startServe starts airlock serve on addr with args and waits until it
// answers; stop ends it with SIGTERM.
func startServe(ctx context.Context, bin, addr string, args ...string) (stop func(), err error) {
	serve := exec.CommandContext(ctx, bin, append([]string{"serve", "--addr", addr}, args...)...)
	serve.Stdout, serve.Stderr = os.Stdout, os.Stderr
	if err := serve.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
	}
	if err := waitRegistry(ctx, addr); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}
