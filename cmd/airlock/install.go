package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/keyless"
	"github.com/airlock-dev/airlock/mirror"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

type installFlags struct {
	insecurePerms  bool
	root           string
	policy         string
	registry       string
	reg            registryFlags
	allowDowngrade bool
	retry          time.Duration
	quiet          bool
	asJSON         bool
	auditLog       string
	attest         attestFlags
}

func (f *installFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "", "install root: files and models go to ROOT/releases/NAME/VERSION, ROOT/current/NAME points at the current one (required)")
	fs.StringVarP(&f.policy, "policy", "p", "", "trust policy (required; the bundle is verified in the same pass)")
	fs.BoolVar(&f.insecurePerms, "insecure-permissions", false, "use a policy or key file even when group or others may write it (refused by default, as OpenSSH refuses such keys)")
	fs.StringVar(&f.registry, "registry", "", "also mirror images and models into this registry in the same run: REGISTRY[/PREFIX]")
	f.reg.register(fs, "the --registry registry")
	fs.BoolVar(&f.allowDowngrade, "allow-downgrade", false, "accept a lower sequence than the highest installed, where the policy rule sets allowDowngrade: true")
	fs.DurationVar(&f.retry, "retry-window", mirror.DefaultRetryWindow, "with --registry: how long to keep retrying a registry that refuses or resets connections")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print only errors (and REJECTED NAME VERSION when the bundle is refused)")
	fs.BoolVar(&f.asJSON, "json", false, "print the result (verification report, what was installed and mirrored) as JSON")
	fs.StringVar(&f.auditLog, "audit-log", "", "also append every audit line of this run (installed, switched or refused) to this hash-chained log outside the root (see airlock audit)")
	f.attest.register(fs)
}

func (f *installFlags) validate(args []string) error {
	if len(args) != 1 {
		return usagef("install takes exactly one bundle path")
	}
	if f.root == "" {
		return usagef("--root is required")
	}
	if f.policy == "" {
		return usagef("--policy is required: nothing is installed without verification")
	}
	if f.retry <= 0 {
		return usagef("--retry-window must be positive, not %v", f.retry)
	}
	if f.registry == "" && (len(f.reg.insecure) > 0 || f.reg.caFile != "") {
		return usagef("--insecure-registry and --ca-file need --registry")
	}
	return f.attest.validate()
}

func installCommand() command {
	return command{
		name:    "install",
		summary: "Verify a bundle and install its files and models under a root, atomically, refusing replays and downgrades.",
		usage:   "BUNDLE --root DIR --policy policy.yaml [--registry REGISTRY[/PREFIX]] [flags]",
		examples: `  airlock install payments-1.4.2.airlock --root /opt/payments --policy policy.yaml
  airlock install payments-1.4.2.airlock --root /opt/payments --policy policy.yaml --registry registry.site:5000/mirror
  airlock install payments-1.4.1.airlock --root /opt/payments --policy policy.yaml --allow-downgrade
  airlock install payments-1.4.2.airlock --root /opt/payments --policy policy.yaml --attest site.key -o vsa.json
  airlock install payments-1.4.2.airlock --root /opt/payments --policy policy.yaml --audit-log /var/log/airlock/audit.log
  airlock audit show /opt/payments/.airlock/audit.log
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &installFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				return runInstall(ctx, e, f, args[0])
			}
		},
	}
}

func runInstall(ctx context.Context, e *env, f *installFlags, path string) (err error) {
	ran := false // install.Install records its own refusals
	defer func() {
		if ran || err == nil {
			return
		}
		_, skipped := install.RecordRefusal(install.RefusalOptions{Root: f.root, AuditLog: f.auditLog, Airlock: version(), Path: reportPath(path)}, err)
		for _, s := range skipped {
			fmt.Fprintf(e.stderr, "airlock install: %s\n", s)
		}
	}()
	pol, err := policy.LoadWith(f.policy, policy.LoadOptions{InsecurePermissions: f.insecurePerms})
	if err != nil {
		return err
	}
	rec, err := f.attest.newRecorder(ctx, e, "install")
	if err != nil {
		return err
	}
	defer rec.close()
	now := time.Now()
	opts := install.Options{Root: f.root, Policy: pol, AllowDowngrade: f.allowDowngrade, Now: now, Path: reportPath(path), Airlock: version(),
		AuditLog: f.auditLog, Upstream: (&keyless.Checker{Path: path}).Check}
	if rec != nil {
		opts.Record = func(ctx context.Context, rep *verify.Report) (string, error) { return rec.writeIfRead(ctx, e, rep) }
	}
	prog := newProgress(e, f.quiet || f.asJSON, "install")
	defer prog.wait()
	var rc *registryClient
	var peer *mirror.Peer
	if f.registry != "" {
		target, err := destination("--registry", f.registry, f.reg.insecure)
		if err != nil {
			return err
		}
		if rc, err = newRegistryClient(e, &f.reg); err != nil {
			return err
		}
		pusher, err := mirror.NewPusher(ctx, mirror.MirrorOptions{
			To: target, Policy: pol, Transport: rc.transport, Keychain: rc.keychain, Now: now, Path: reportPath(path),
			UserAgent: "airlock/" + version(), Progress: prog.bundleProgress(),
			AllowDowngrade: f.allowDowngrade, RetryWindow: f.retry, OnRetry: retryReporter(e), OnRestart: restartReporter(e),
		})
		if err != nil {
			return err
		}
		defer pusher.Close()
		peer = &mirror.Peer{Pusher: pusher}
		opts.Mirror = peer
	}
	file, err := openChecked(ctx, e, path)
	if err != nil {
		return err
	}
	defer file.Close()
	opts.Progress = prog.bundleProgress()
	ran = true
	res, ierr := install.Install(ctx, file, opts)
	prog.wait()
	if rc != nil {
		ierr = rc.withHint(ierr)
	}
	ierr = withJournalHint(path, ierr)
	if res != nil {
		// A rejected bundle got its FAILED record (opts.Record) and a
		// refused install its audit line from install.Install; say what
		// could not be written.
		if res.RecordError != nil {
			fmt.Fprintf(e.stderr, "airlock install: the verification record could not be written: %v\n", res.RecordError)
		}
		for _, s := range res.AuditSkipped {
			fmt.Fprintf(e.stderr, "airlock install: %s\n", s)
		}
	}
	if res == nil || (res.Verify == nil && !f.asJSON) {
		return ierr
	}
	out := installOutput{Result: res}
	if peer != nil {
		out.Mirror = peer.Result
	}
	if f.asJSON {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
		return ierr
	}
	switch {
	case f.quiet && res.Verify != nil && !res.Verify.Verified:
		fmt.Fprintln(e.stdout, resultLine(res.Verify))
	case f.quiet:
	default:
		if res.Verify != nil && !res.Verify.Verified {
			renderReport(e.stdout, res.Verify)
		}
		if ierr == nil {
			renderInstall(e.stdout, out)
		}
	}
	return ierr
}

// installOutput is what `airlock install` reports: the install, and what
// was pushed to the registry with --registry.
type installOutput struct {
	*install.Result
	// Mirror is what was pushed to the registry, with --registry.
	Mirror *mirror.Result `json:"mirror,omitempty"`
}

func renderInstall(w io.Writer, r installOutput) {
	v := r.Verify
	var signers []string
	for _, s := range v.Signers {
		if s.Verified && s.Counted {
			signers = append(signers, s.Name)
		}
	}
	fmt.Fprintf(w, "VERIFIED  %s %s (sequence %d), signed by %s; %s checked\n", r.Name, r.Version, r.Sequence, joinOr(signers, "nobody"), humanBytes(v.Throughput.Bytes))
	for _, s := range r.Repaired {
		fmt.Fprintf(w, "repaired: %s\n", s)
	}
	switch r.Outcome {
	case install.OutcomeInstalled:
		what := "installed"
		if r.Downgrade {
			what = "installed (downgrade, allowed by the policy)"
		}
		fmt.Fprintf(w, "%s %s %s: %s in %s\n", what, r.Name, r.Version, plural(r.Files, "file"), humanBytes(r.Bytes))
		fmt.Fprintf(w, "  release:  %s\n", r.ReleaseDir)
	case install.OutcomeSwitched:
		fmt.Fprintf(w, "%s %s was installed already; it is current again\n", r.Name, r.Version)
	case install.OutcomeUnchanged:
		fmt.Fprintf(w, "%s %s is installed and current already; nothing to do\n", r.Name, r.Version)
	}
	prev := ""
	if r.Previous != "" && r.Previous != r.Version {
		prev = " (was " + r.Previous + ")"
	}
	fmt.Fprintf(w, "  current:  %s -> ../releases/%s/%s%s\n", r.Link, r.Name, r.Version, prev)
	if r.Mirror != nil {
		renderMirror(w, r.Mirror, nil, "")
	} else if r.Images > 0 || r.Charts > 0 {
		what := plural(r.Images, "image")
		if r.Charts > 0 {
			what += " and " + plural(r.Charts, "chart")
		}
		fmt.Fprintf(w, "  note:     %s verified but not mirrored (add --registry, or run airlock mirror)\n", what)
	}
}
