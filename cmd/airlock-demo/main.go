// Command demo runs airlock's main job end to end on the sample release in
// testdata/sample, with nothing outside this repository: it starts a registry
// in this process (go-containerregistry's registry, loopback only), pushes the
// deterministic sample images into it, copies the sample release with the
// registry's address filled in, and runs the real airlock binary to pack and
// inspect it. `make demo` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/airlock-dev/airlock/internal/sample"
)

func main() {
	airlock := flag.String("airlock", "bin/airlock", "airlock binary to run")
	sampleDir := flag.String("sample", "testdata/sample", "sample release to pack")
	work := flag.String("work", "demo-out", "working directory (recreated)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *airlock, *sampleDir, *work); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(ctx context.Context, airlock, sampleDir, work string) error {
	bin, err := filepath.Abs(airlock)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%v (run `make build` first)", err)
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	release := filepath.Join(work, "release")

	step("Starting a registry on 127.0.0.1 (in this process; the connected side's source registry)")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(nilLogger())), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	host := ln.Addr().String()
	fmt.Printf("registry listening on %s\n", host)

	step("Pushing the sample images (deterministic: a multi-arch index, an OCI image, a Docker-media-type image)")
	imgs, err := sample.Images()
	if err != nil {
		return err
	}
	if err := sample.Push(ctx, host, imgs); err != nil {
		return err
	}
	for _, im := range imgs {
		kind := "image"
		if im.Index != nil {
			kind = "index"
		}
		fmt.Printf("pushed %s/%s:%s (%s)\n", host, im.Repo, im.Tag, kind)
	}

	step("Copying the sample release from %s, pointing its images at %s", sampleDir, host)
	if err := copyRelease(sampleDir, release, host); err != nil {
		return err
	}
	spec, _ := os.ReadFile(filepath.Join(release, "airlock.yaml"))
	fmt.Print(string(spec))

	keysDir := filepath.Join(work, "keys")
	if err := os.MkdirAll(keysDir, 0o755); err != nil {
		return err
	}
	step("Generating three signing keys (release, security, ops); the password comes from AIRLOCK_PASSWORD")
	for _, k := range []string{"release", "security", "ops"} {
		if err := airlockRun(ctx, bin, "key", "generate", "--output", filepath.Join(keysDir, k)); err != nil {
			return err
		}
	}

	bundlePath := filepath.Join(work, "demo-1.0.0.airlock")
	step("airlock pack (signed by release while packing)")
	if err := airlockRun(ctx, bin, "pack", "-f", filepath.Join(release, "airlock.yaml"), "-o", bundlePath, "--key", filepath.Join(keysDir, "release.key"), "--channel", "prod"); err != nil {
		return err
	}
	step("airlock sign: a second person adds a signature (only the head is rewritten)")
	if err := airlockRun(ctx, bin, "sign", bundlePath, "--key", filepath.Join(keysDir, "security.key")); err != nil {
		return err
	}

	policyPath := filepath.Join(work, "policy.yaml")
	policy := `# 2 of 3: any two of release, security and ops must sign a "demo" bundle for prod.
keys:
  release:  { publicKey: keys/release.pub }
  security: { publicKey: keys/security.pub }
  ops:      { publicKey: keys/ops.pub }
bundles:
  - match: "demo"
    signers: [release, security, ops]
    threshold: 2
    channel: prod
    maxAge: 30d
    require:
      sbomForEveryImage: false
      platforms: [linux/amd64]
`
	if err := os.WriteFile(policyPath, []byte(policy), 0o644); err != nil {
		return err
	}
	step("The isolated side's trust policy (%s)", policyPath)
	fmt.Print(policy)

	step("airlock inspect --policy (reads only the head)")
	if err := airlockRun(ctx, bin, "inspect", bundlePath, "--policy", policyPath); err != nil {
		return err
	}
	step("airlock verify: signatures against the policy, then every byte against its digest")
	if err := airlockRun(ctx, bin, "verify", bundlePath, "--policy", policyPath); err != nil {
		return err
	}

	tampered := filepath.Join(work, "tampered.airlock")
	if err := tamper(bundlePath, tampered); err != nil {
		return err
	}
	step("A copy with one byte changed near its end must be refused (exit 3)")
	err = airlockRun(ctx, bin, "verify", tampered, "--policy", policyPath)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		return fmt.Errorf("the tampered copy was not refused with exit 3: %v", err)
	}
	fmt.Println("refused with exit status 3, as it must be")

	media, err := crossing(ctx, bin, work, release, keysDir, policyPath)
	if err != nil {
		return err
	}
	if err := serveFromMedia(ctx, bin, media, policyPath); err != nil {
		return err
	}
	if err := isolatedSide(ctx, bin, work, bundlePath, policyPath, release, keysDir); err != nil {
		return err
	}
	reportPath, err := reviewerSide(ctx, bin, work, bundlePath, policyPath, keysDir, "demo-root")
	if err != nil {
		return err
	}
	step("Done. The bundle is %s; extract it with `tar --zstd -xf %s -C DIR` to see the OCI layout.", bundlePath, bundlePath)
	fmt.Printf("The reviewer's report: %s (open file://%s in a browser; Print to PDF for a document)\n", reportPath, reportPath)
	return nil
}

// tamper copies a bundle with one byte flipped in its body.
func tamper(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	b[len(b)-100] ^= 0x01
	return os.WriteFile(dst, b, 0o644)
}

func airlockRun(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+fmt.Sprint(time.Now().Unix()), "AIRLOCK_PASSWORD=demo-password")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("airlock %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// copyRelease copies the sample tree, replacing the placeholder registry host.
func copyRelease(src, dst, host string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "airlock.yaml" || filepath.Base(rel) == "values.yaml" { // the chart's values name the registry too
			b = []byte(strings.ReplaceAll(string(b), sample.DefaultRegistryHost, host))
		}
		return os.WriteFile(out, b, 0o644)
	})
}
