package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/atomicfile"
	"github.com/airlock-dev/airlock/keyless"
	"github.com/airlock-dev/airlock/mirror"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

type mirrorFlags struct {
	insecurePerms bool
	to            string
	policy        string
	keepHost      bool
	imagesOnly    bool
	jobs          int
	registry      registryFlags
	report        string
	emitConfig    string
	localHost     string
	signKey       string
	tmpDir        string
	quiet         bool
	asJSON        bool
	attest        attestFlags
	auditLog      string
	downgrade     bool
	retry         time.Duration
}

func (f *mirrorFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.to, "to", "", "destination registry and optional path prefix: REGISTRY[/PREFIX] (required)")
	fs.StringVarP(&f.policy, "policy", "p", "", "trust policy (required; the bundle is verified in the same pass)")
	fs.BoolVar(&f.insecurePerms, "insecure-permissions", false, "use a policy or key file even when group or others may write it (refused by default, as OpenSSH refuses such keys)")
	fs.BoolVar(&f.keepHost, "keep-registry-host", false, "put the source registry host into the target path")
	fs.BoolVar(&f.imagesOnly, "images-only", false, "mirror images only, not models")
	fs.IntVar(&f.jobs, "jobs", 4, "concurrent uploads")
	f.registry.register(fs, "the destination")
	fs.StringVar(&f.report, "report", "", "write the source -> mirrored ref@digest mapping of every artifact as JSON to this file")
	fs.StringVar(&f.emitConfig, "emit-config", "", "write containerd hosts.toml and CRI-O/podman registries.conf mirror entries (and the --ca-file CA) into this directory, merged with what earlier runs wrote there")
	fs.StringVar(&f.localHost, "emit-config-local-host", "", "with --emit-config: the registry host nodes use in the names of images packed from oci: and docker-archive: sources (default: no configuration for them)")
	fs.StringVar(&f.signKey, "sign-key", "", "also sign every mirrored image with this site key (cosign format): a file or a pkcs11: URI")
	fs.StringVar(&f.tmpDir, "tmp-dir", "", "directory for blobs waiting to be uploaded (default: the system temporary directory)")
	fs.BoolVar(&f.downgrade, "allow-downgrade", false, "accept a lower sequence than the highest mirrored into this prefix, where the policy rule sets allowDowngrade: true")
	fs.DurationVar(&f.retry, "retry-window", mirror.DefaultRetryWindow, "how long to keep retrying a registry that refuses or resets connections")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print only errors (and REJECTED NAME VERSION when the bundle is refused)")
	fs.BoolVar(&f.asJSON, "json", false, "print the result (verification report, mapping, counts) as JSON")
	f.attest.register(fs)
	fs.StringVar(&f.auditLog, "audit-log", "", "append what this run did (accepted, rejected or failed) to this hash-chained audit log (see airlock audit)")
}

func (f *mirrorFlags) validate(args []string) error {
	if len(args) != 1 {
		return usagef("mirror takes exactly one bundle path")
	}
	if f.to == "" {
		return usagef("--to is required")
	}
	if f.policy == "" {
		return usagef("--policy is required: nothing is mirrored without verification")
	}
	if f.jobs < 1 || f.jobs > 64 {
		return usagef("--jobs must be between 1 and 64, not %d", f.jobs)
	}
	if f.localHost != "" && f.emitConfig == "" {
		return usagef("--emit-config-local-host needs --emit-config")
	}
	if f.retry <= 0 {
		return usagef("--retry-window must be positive, not %v", f.retry)
	}
	return f.attest.validate()
}

func mirrorCommand() command {
	return command{
		name:    "mirror",
		summary: "Verify a bundle and push its images, models, signatures and SBOMs into an OCI registry, digests unchanged.",
		usage:   "BUNDLE --to REGISTRY[/PREFIX] --policy policy.yaml [flags]",
		examples: `  airlock mirror payments-1.4.2.airlock --to registry.site:5000/mirror --policy policy.yaml
  airlock mirror payments-1.4.2.airlock --to 127.0.0.1:5000 --policy policy.yaml --report mapping.json --emit-config nodes/
  airlock mirror payments-1.4.2.airlock --to registry.site --ca-file site-ca.pem --policy policy.yaml --sign-key site.key
  airlock mirror payments-1.4.2.airlock --to registry.site --policy policy.yaml --attest site.key -o vsa.json --audit-log /var/log/airlock/audit.log
  REGISTRY_AUTH_FILE=auth.json airlock mirror payments-1.4.2.airlock --to registry.site --policy policy.yaml   # credentials: docker/podman login, or an auth file; no --creds flag
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &mirrorFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				return runMirror(ctx, e, f, args[0])
			}
		},
	}
}

func runMirror(ctx context.Context, e *env, f *mirrorFlags, path string) error {
	pol, err := policy.LoadWith(f.policy, policy.LoadOptions{InsecurePermissions: f.insecurePerms})
	if err != nil {
		return err
	}
	target, err := destination("--to", f.to, f.registry.insecure)
	if err != nil {
		return err
	}
	rc, err := newRegistryClient(e, &f.registry)
	if err != nil {
		return err
	}
	var signer bundle.Signer
	if f.signKey != "" {
		signers, release, err := loadSigners(ctx, e, []string{f.signKey})
		if err != nil {
			return err
		}
		defer release()
		signer = signers[0]
	}
	rec, err := f.attest.newRecorder(ctx, e, "mirror")
	if err != nil {
		return err
	}
	defer rec.close()
	file, err := openChecked(ctx, e, path)
	if err != nil {
		return err
	}
	defer file.Close()
	prog := newProgress(e, f.quiet || f.asJSON, "mirror")
	mopts := mirror.MirrorOptions{
		To: target, Policy: pol, KeepRegistryHost: f.keepHost, ImagesOnly: f.imagesOnly, Jobs: f.jobs,
		Transport: rc.transport, Keychain: rc.keychain, TempDir: f.tmpDir, Path: reportPath(path), SiteSigner: signer, Now: time.Now(),
		Upstream:       (&keyless.Checker{Path: path}).Check,
		AllowDowngrade: f.downgrade, RetryWindow: f.retry, OnRetry: retryReporter(e), OnRestart: restartReporter(e),
		Progress: prog.bundleProgress(), UserAgent: "airlock/" + version(),
	}
	res, merr := mirror.Mirror(ctx, file, mopts)
	prog.wait()
	merr = withJournalHint(path, rc.withHint(merr))
	if res == nil {
		return merr
	}
	merr = recordMirror(ctx, e, f, rec, mopts, res, merr)
	if merr == nil && f.report != "" {
		if err := writeJSONFile(f.report, map[string]any{"target": res.Target, "mappings": res.Mappings}); err != nil {
			return err
		}
	}
	var emitted *mirror.NodeConfigResult
	if merr == nil && f.emitConfig != "" {
		plain, err := rc.emitPlainHTTP(target)
		if err != nil {
			return err
		}
		emitted, err = mirror.EmitConfig(mirror.NodeConfigOptions{
			Dir: f.emitConfig, To: target, KeepRegistryHost: f.keepHost, Mappings: res.Mappings,
			PlainHTTP: plain, CAFile: f.registry.caFile, LocalHost: f.localHost,
		})
		if err != nil {
			return err
		}
	}
	if f.asJSON {
		out := struct {
			*mirror.Result
			NodeConfig *mirror.NodeConfigResult `json:"nodeConfig,omitempty"`
		}{res, emitted}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else if f.quiet {
		if res.Verify != nil && !res.Verify.Verified {
			fmt.Fprintln(e.stdout, resultLine(res.Verify))
		}
	} else {
		if verify.IsFailure(merr) && res.Verify != nil {
			renderReport(e.stdout, res.Verify)
		}
		renderMirror(e.stdout, res, emitted, f.report)
	}
	return merr
}

func renderMirror(w io.Writer, r *mirror.Result, emitted *mirror.NodeConfigResult, report string) {
	if len(r.Mappings) > 0 {
		fmt.Fprintf(w, "Mirrored into %s:\n", r.Target)
		for _, m := range r.Mappings {
			fmt.Fprintf(w, "  %-10s %s\n  %-10s -> %s\n", m.Kind, m.Source, "", m.Target)
		}
	}
	b := r.Blobs
	fmt.Fprintf(w, "%s: blobs %d pushed (%s), %d mounted, %d already present; manifests %d pushed, %d present; %d tags set",
		"Summary", b.Pushed, humanBytes(b.BytesPushed), b.Mounted, b.Skipped, r.Manifests.Pushed, r.Manifests.Skipped, r.Tags)
	if r.Signed > 0 {
		fmt.Fprintf(w, "; %d site signatures", r.Signed)
	}
	if b.Resumed > 0 {
		fmt.Fprintf(w, "; %d uploads resumed (%s not sent again)", b.Resumed, humanBytes(b.BytesResumed))
	}
	if b.Restarted > 0 {
		fmt.Fprintf(w, "; %d uploads restarted (%s sent again)", b.Restarted, humanBytes(b.BytesRestarted))
	}
	fmt.Fprintf(w, "; %.1fs\n", r.Seconds)
	if report != "" && len(r.Mappings) > 0 {
		fmt.Fprintf(w, "Mapping written to %s\n", report)
	}
	if emitted == nil {
		return
	}
	for _, p := range emitted.Files {
		fmt.Fprintf(w, "Node configuration written: %s\n", p)
	}
	if len(emitted.Registries) > 0 {
		fmt.Fprintf(w, "Nodes using it pull these registries through the mirror: %s\n", joinHosts(emitted.Registries))
	}
	for _, s := range emitted.Unmapped {
		fmt.Fprintf(w, "No node configuration for %s: it was packed from a local source, so nodes have no registry name for it (name one with --emit-config-local-host HOST)\n", s)
	}
}

// writeJSONFile writes v as indented JSON, atomically.
func writeJSONFile(path string, v any) error {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := writeJSON(f, v); err != nil {
		return err
	}
	return f.Commit()
}

// destination parses a REGISTRY[/PREFIX] flag: plain HTTP when the host
// is listed in --insecure-registry.
func destination(flag, to string, insecureHosts []string) (mirror.Target, error) {
	host, _, _ := strings.Cut(to, "/")
	target, err := mirror.ParseTarget(to, slices.Contains(insecureHosts, host))
	if err != nil {
		if strings.Contains(to, "://") {
			return mirror.Target{}, usagef("%s: %v; for a plain-HTTP registry add --insecure-registry HOST", flag, err)
		}
		return mirror.Target{}, usagef("%s: %v", flag, err)
	}
	return target, nil
}

// restartReporter says on standard error, once per upload, that the
// registry would not continue an upload an earlier run or attempt had
// begun, so that the blob is sent again from its start.
func restartReporter(e *env) func(mirror.RestartEvent) {
	return func(ev mirror.RestartEvent) {
		fmt.Fprintf(e.stderr, "airlock: %s would not continue the upload of blob %s begun earlier (%v); sending its %s again from the start (%s had been sent)\n",
			ev.Repository, shortDigest(ev.Blob), ev.Err, humanBytes(ev.Size), humanBytes(ev.Lost))
	}
}

// retryReporter says on standard error that the registry is unreachable
// and for how long it is still retried.
func retryReporter(e *env) func(mirror.RetryEvent) {
	return func(ev mirror.RetryEvent) {
		fmt.Fprintf(e.stderr, "airlock: registry unreachable (%v); retrying for up to %v more (--retry-window %v)\n",
			ev.Err, (ev.Window - ev.Waited).Round(time.Second), ev.Window)
	}
}
