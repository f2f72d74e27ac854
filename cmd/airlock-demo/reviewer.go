package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/airlock-dev/airlock/bundle"
)

// reviewerSide runs the compliance reviewer's part: the report of the
// bundle (HTML and Markdown), a signed verification record that stock
// cosign checks, and the audit logs mirror and install wrote. It returns
// the report's path.
func reviewerSide(ctx context.Context, bin, work, bundlePath, policyPath, keysDir, root string) (string, error) {
	reportPath, err := filepath.Abs(filepath.Join(work, "report.html"))
	if err != nil {
		return "", err
	}
	step("airlock report: the reviewer's document (one verification pass; self-contained HTML, no network)")
	if err := airlockRun(ctx, bin, "report", bundlePath, "--policy", policyPath, "-o", reportPath, "-q"); err != nil {
		return "", err
	}
	if err := airlockRun(ctx, bin, "report", bundlePath, "--policy", policyPath, "-o", filepath.Join(work, "report.md"), "-q"); err != nil {
		return "", err
	}

	step("airlock verify --attest: a signed verification record (SLSA verification summary, DSSE) by the site key")
	site := filepath.Join(keysDir, "site")
	if err := airlockRun(ctx, bin, "key", "generate", "--output", site); err != nil {
		return "", err
	}
	vsa := filepath.Join(work, "vsa.json")
	if err := airlockRun(ctx, bin, "verify", bundlePath, "--policy", policyPath, "-q", "--attest", site+".key", "-o", vsa); err != nil {
		return "", err
	}
	head, err := bundle.ReadHeadFile(bundlePath)
	if err != nil {
		return "", err
	}
	fmt.Printf("check it with stock cosign (the subject is the bundle root):\n  cosign verify-blob-attestation --key %s.pub --type https://slsa.dev/verification_summary/v1 --insecure-ignore-tlog --signature %s --digest %s --digestAlg sha256\n",
		site, vsa, strings.TrimPrefix(head.Manifest.Root.Digest, "sha256:"))

	step("airlock audit verify: the hash-chained audit logs of the mirror and of %s", root)
	if err := airlockRun(ctx, bin, "audit", "verify", filepath.Join(work, "mirror-audit.log")); err != nil {
		return "", err
	}
	if err := airlockRun(ctx, bin, "audit", "show", "--root", root); err != nil {
		return "", err
	}
	return reportPath, nil
}
