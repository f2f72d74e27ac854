package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// crossing shows the bundle crossing the gap in pieces: the release packed
// as volumes small enough for the sample (the same flags take 4095MiB for
// FAT32 sticks), one volume checked alone as a courier would, a missing
// volume named by number, and the whole set verified from a directory.
func crossing(ctx context.Context, bin, work, release, keysDir, policyPath string) (string, error) {
	media := filepath.Join(work, "media")
	if err := os.MkdirAll(media, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(media, "demo-1.0.0.airlock")
	step("airlock pack --volume-size 400KiB --frame-size 64KiB: the release as volumes for removable media (real media: --volume-size 4095MiB)")
	if err := airlockRun(ctx, bin, "pack", "-f", filepath.Join(release, "airlock.yaml"), "-o", out, "--volume-size", "400KiB", "--frame-size", "64KiB",
		"--key", filepath.Join(keysDir, "release.key"), "--channel", "prod"); err != nil {
		return "", err
	}
	if err := airlockRun(ctx, bin, "sign", media, "--key", filepath.Join(keysDir, "security.key")); err != nil {
		return "", err
	}
	vols, _ := filepath.Glob(out + ".*")
	sort.Strings(vols)
	for _, v := range vols {
		st, err := os.Stat(v)
		if err != nil {
			return "", err
		}
		fmt.Printf("  %s  %d bytes\n", v, st.Size())
	}
	if len(vols) < 2 {
		return "", fmt.Errorf("expected several volumes, got %v", vols)
	}
	last := vols[len(vols)-1]
	step("airlock verify --volume: a courier checks one volume alone against the signed head in volume 1")
	if err := airlockRun(ctx, bin, "verify", vols[0], "--volume", last, "--policy", policyPath); err != nil {
		return "", err
	}
	step("A set with volume 2 missing must be refused, naming volume 2, before anything is read (exit 3)")
	partial := filepath.Join(work, "media-partial")
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return "", err
	}
	for i, v := range vols {
		if i == 1 {
			continue
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(partial, filepath.Base(v)), b, 0o644); err != nil {
			return "", err
		}
	}
	err := airlockRun(ctx, bin, "verify", partial, "--policy", policyPath)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		return "", fmt.Errorf("the incomplete set was not refused with exit 3: %v", err)
	}
	fmt.Println("refused with exit status 3, as it must be")
	step("airlock verify %s: the whole set, from its directory (volumes in any order), checked on every core", media)
	if err := airlockRun(ctx, bin, "verify", media, "--policy", policyPath); err != nil {
		return "", err
	}
	return media, nil
}

// serveFromMedia serves the volume set read-only with airlock serve
// --bundle (nothing copied first) and pulls an image from it, every layer
// checked against its digest as it is read.
func serveFromMedia(ctx context.Context, bin, media, policyPath string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	step("airlock serve --bundle %s: the volume set served read-only as a registry, straight from the media", media)
	stop, err := startServe(ctx, bin, addr, "--bundle", media, "--policy", policyPath)
	if err != nil {
		return err
	}
	defer stop()
	ref, err := name.ParseReference(addr+"/demo/api:1.0", name.Insecure)
	if err != nil {
		return err
	}
	step("Pulling %s from it: manifest, config and every layer, each checked against its digest", ref)
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var total int64
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, rc) // go-containerregistry verifies the digest at EOF
		rc.Close()
		if err != nil {
			return err
		}
		total += n
	}
	fmt.Printf("pulled %s: %d layers, %d bytes, digests verified\n", d, len(layers), total)
	return nil
}
