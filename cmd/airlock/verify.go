package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/keyless"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

type verifyFlags struct {
	insecurePerms bool
	policy        string
	asJSON        bool
	quiet         bool
	attest        attestFlags
	volume        string
}

func (f *verifyFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.policy, "policy", "p", "", "trust policy (required; see docs/policy.md)")
	fs.BoolVar(&f.insecurePerms, "insecure-permissions", false, "use a policy or key file even when group or others may write it (refused by default, as OpenSSH refuses such keys)")
	fs.BoolVar(&f.asJSON, "json", false, "print the documented JSON report on stdout (also when verification fails)")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print only errors and the result line (VERIFIED or REJECTED NAME VERSION)")
	fs.StringVar(&f.volume, "volume", "", "check only this one volume of a volume set, against the head of BUNDLE (volume 1, or a directory holding it) verified by the policy; the other volumes need not be there")
	f.attest.register(fs)
}

func (f *verifyFlags) validate(args []string) error {
	if len(args) != 1 {
		return usagef("verify takes exactly one bundle path")
	}
	if f.policy == "" {
		return usagef("--policy is required: airlock never trusts a bundle without one")
	}
	if f.volume != "" && (f.attest.key != "" || args[0] == stdinPath) {
		return usagef("--volume checks one volume against the head of a file; it takes neither --attest nor standard input")
	}
	return f.attest.validate()
}

func verifyCommand() command {
	return command{
		name:    "verify",
		summary: "Check a bundle's signatures against a trust policy and every byte against its digest, offline.",
		usage:   "BUNDLE --policy policy.yaml [--json] [--attest site.key -o vsa.json]",
		examples: `  airlock verify payments-1.4.2.airlock --policy policy.yaml
  airlock verify payments-1.4.2.airlock --policy policy.yaml --json > report.json
  airlock verify payments-1.4.2.airlock.001 --policy policy.yaml   # a volume set: all volumes next to it
  airlock verify payments-1.4.2.airlock.001 --volume /media/usb/payments-1.4.2.airlock.003 --policy policy.yaml
  AIRLOCK_PASSWORD=... airlock verify payments-1.4.2.airlock --policy policy.yaml --attest site.key -o vsa.json
  cosign verify-blob-attestation --key site.pub --type https://slsa.dev/verification_summary/v1 \
      --insecure-ignore-tlog --signature vsa.json --digest ROOT-HEX --digestAlg sha256
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &verifyFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				if f.volume != "" {
					return runVerifyVolume(ctx, e, f, args[0])
				}
				return runVerify(ctx, e, f, args[0])
			}
		},
	}
}

func runVerify(ctx context.Context, e *env, f *verifyFlags, path string) error {
	pol, err := policy.LoadWith(f.policy, policy.LoadOptions{InsecurePermissions: f.insecurePerms})
	if err != nil {
		return err
	}
	rec, err := f.attest.newRecorder(ctx, e, "verify")
	if err != nil {
		return err
	}
	defer rec.close()
	prog := newProgress(e, f.quiet || f.asJSON, "verify")
	vopts := verify.Options{Policy: pol, Path: reportPath(path), Progress: prog.bundleProgress(), Now: time.Now(),
		Upstream: (&keyless.Checker{Path: path}).Check}
	rep, verr, err := verifyBundle(ctx, e, path, vopts)
	prog.wait()
	if err != nil {
		return err
	}
	if verr != nil {
		verr = withJournalHint(path, verr)
		rep.Error = verr.Error()
	}
	if verr != nil && !verify.IsFailure(verr) && rep.Bundle.Name == "" && !f.asJSON {
		return verr // could not verify (I/O): exit 1
	}

	if f.asJSON {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else if f.quiet {
		fmt.Fprintln(e.stdout, resultLine(rep))
	} else {
		renderReport(e.stdout, rep)
	}
	if verr == nil || verify.IsFailure(verr) {
		if _, err := rec.writeIfRead(ctx, e, rep); err != nil {
			if verr == nil {
				return err
			}
			fmt.Fprintf(e.stderr, "airlock verify: the verification record could not be written: %v\n", err)
		}
	}
	return verr
}

// resultLine is the one line -q prints: "VERIFIED NAME VERSION" or
// "REJECTED NAME VERSION" (the path when the head could not be read).
func resultLine(r *verify.Report) string {
	status := "VERIFIED"
	if !r.Verified {
		status = "REJECTED"
	}
	if r.Bundle.Name == "" {
		return status + " " + r.Bundle.Path
	}
	return status + " " + r.Bundle.Name + " " + r.Bundle.Version
}

func renderReport(w io.Writer, r *verify.Report) {
	b := r.Bundle
	status := "VERIFIED"
	if !r.Verified {
		status = "REJECTED"
	}
	if b.Name == "" {
		fmt.Fprintf(w, "%s  %s (its head could not be read)\n", status, b.Path)
	} else {
		fmt.Fprintf(w, "%s  %s %s", status, b.Name, b.Version)
	}
	if b.Name != "" {
		fmt.Fprintf(w, " (sequence %d", b.Sequence)
		if b.Channel != "" {
			fmt.Fprintf(w, ", channel %s", b.Channel)
		}
		fmt.Fprintf(w, ", created %s, expires %s)\n", b.Created.Format(time.RFC3339), b.Expires.Format(time.RFC3339))
	}
	if b.Root != "" {
		fmt.Fprintf(w, "  root:     %s\n", b.Root)
	}
	p := r.Policy
	fmt.Fprintf(w, "  policy:   %s (%s)", p.Path, shortDigest(p.Digest))
	if p.Rule >= 0 {
		fmt.Fprintf(w, ", rule %d %q: %d of [%s]", p.Rule, p.Match, p.Threshold, strings.Join(p.Signers, " "))
	}
	fmt.Fprintln(w)
	for _, s := range r.Signers {
		mark := "x"
		if s.Verified && s.Counted {
			mark = "+"
		} else if s.Verified {
			mark = "-"
		}
		name := s.Name
		if name == "" {
			name = "(unknown key)"
		}
		fmt.Fprintf(w, "  signer:   [%s] %s %s", mark, name, s.KeyID)
		if s.Note != "" {
			fmt.Fprintf(w, " (%s)", s.Note)
		}
		fmt.Fprintln(w)
	}
	for _, c := range r.Checks {
		mark := "ok"
		if !c.OK {
			mark = "FAILED"
		}
		fmt.Fprintf(w, "  check:    %-18s %-6s %s\n", c.Name, mark, c.Detail)
	}
	for _, u := range r.Upstream {
		if u.OK {
			fmt.Fprintf(w, "  upstream: [+] %s signed by %s (%s), %s %s, log index %d, root %s\n", u.Image, u.Subject, u.Issuer, u.Form, shortDigest(u.Attachment), u.LogIndex, shortDigest(u.TrustedRoot))
		} else {
			fmt.Fprintf(w, "  upstream: [x] %s: %s\n", u.Image, u.Reason)
		}
	}
	for _, fnd := range r.Findings {
		fmt.Fprintf(w, "  finding:  %s: expected %s, got %s\n", fnd.Entry, fnd.Expected, fnd.Actual)
		if fnd.Damaged != "" {
			fmt.Fprintf(w, "            damaged: %s\n", fnd.Damaged)
		}
	}
	if r.Verified {
		t := r.Throughput
		fmt.Fprintf(w, "  checked:  %s in %.2fs (%.0f MiB/s)\n", humanBytes(t.Bytes), t.Seconds, t.MiBPerSecond)
	} else if r.Error != "" {
		fmt.Fprintf(w, "  reason:   %s\n", r.Error)
	}
}

// volumeReport is the JSON `airlock verify --volume --json` prints.
type volumeReport struct {
	SchemaVersion int                 `json:"schemaVersion"`
	Airlock       string              `json:"airlock"`
	Head          *verify.Report      `json:"head"`
	Volume        *bundle.VolumeCheck `json:"volume,omitempty"`
	Error         string              `json:"error,omitempty"`
}

// runVerifyVolume checks one volume on its own: the head (from volume 1) is
// verified against the policy, then the volume's bytes against the size
// and sha256 the signed head gives it.
func runVerifyVolume(ctx context.Context, e *env, f *verifyFlags, path string) error {
	pol, err := policy.LoadWith(f.policy, policy.LoadOptions{InsecurePermissions: f.insecurePerms})
	if err != nil {
		return err
	}
	first, file := openFirstVolume(path)
	defer file.Close()
	var head *bundle.Head
	rep, verr := verify.Verify(ctx, file, verify.Options{Policy: pol, Path: first, Now: time.Now(), HeadOnly: true,
		Upstream: (&keyless.Checker{Path: first}).Check,
		Trusted:  func(_ context.Context, h *bundle.Head) error { head = h; return nil }})
	out := volumeReport{SchemaVersion: 1, Airlock: version(), Head: rep}
	var check *bundle.VolumeCheck
	if verr == nil {
		check, verr = bundle.CheckVolume(ctx, head, f.volume)
		out.Volume = check
	}
	if verr != nil {
		out.Error = verr.Error()
	}
	switch {
	case f.asJSON:
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	case verr != nil:
		if !f.quiet && rep.Bundle.Name != "" && !rep.Trusted {
			renderReport(e.stdout, rep) // the head itself was refused
		}
		fmt.Fprintf(e.stdout, "REJECTED volume %s\n", f.volume)
	default:
		fmt.Fprintf(e.stdout, "VERIFIED volume %d of %d of %s %s: %s (%d bytes, %s)\n", check.Number, check.Of, rep.Bundle.Name, rep.Bundle.Version, check.Path, check.Size, check.SHA256)
		if check.Misnamed != 0 {
			fmt.Fprintf(e.stdout, "  warning:  its name says volume %d; rename it to %s, or the set will be refused\n", check.Misnamed, bundle.VolumeName(strings.TrimSuffix(filepath.Base(check.Path), filepath.Ext(check.Path)), check.Number))
		}
		if !f.quiet {
			fmt.Fprintf(e.stdout, "  head:   %s, signed and accepted by %s (rule %d); the other volumes were not read\n", first, f.policy, rep.Policy.Rule)
		}
	}
	return verr
}

// openFirstVolume opens volume 1 of the set path names, for --volume. A
// volume 1 that is missing or not a regular file (a FIFO would block) is
// a refusal of the set, as for any other command: the reader returned
// fails with it, so that verify reports it (exit 3, --json).
func openFirstVolume(path string) (string, io.ReadCloser) {
	first, err := firstVolume(path)
	if err != nil {
		return path, io.NopCloser(failingReader{fmt.Errorf("%w: %w", bundle.ErrVolume, err)})
	}
	st, err := os.Stat(first)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = &bundle.VolumeError{Number: 1, Path: first, Err: fmt.Errorf("%w: volume 1 is missing; it holds the head, which every volume is checked against", bundle.ErrVolume)}
	case err == nil && !st.Mode().IsRegular():
		err = &bundle.VolumeError{Number: 1, Path: first, Err: fmt.Errorf("%w: not a regular file (%s)", bundle.ErrVolume, st.Mode().Type())}
	}
	if err != nil {
		return first, io.NopCloser(failingReader{err})
	}
	f, err := os.Open(first)
	if err != nil {
		return first, io.NopCloser(failingReader{err})
	}
	return first, f
}

// firstVolume finds volume 1 of the set path names (a directory, or any
// volume); a plain bundle file is its own head.
func firstVolume(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		m, _ := filepath.Glob(filepath.Join(path, "*.001"))
		if len(m) != 1 {
			return "", fmt.Errorf("%s: expected one volume 1 (NAME.001) in it, found %d", path, len(m))
		}
		return m[0], nil
	}
	if i := strings.LastIndexByte(path, '.'); i > 0 && bundle.IsVolumeSet(path) {
		return path[:i] + ".001", nil
	}
	return path, nil
}

// verifyBundle verifies the bundle at path. A version 2 bundle in a file or
// volume set is checked out of order on every core; standard input and
// version 1 bundles are checked front to back as they stream. err is set
// only when the bundle could not be opened at all.
func verifyBundle(ctx context.Context, e *env, path string, opts verify.Options) (*verify.Report, error, error) {
	if path != stdinPath {
		if st, serr := os.Stat(path); serr == nil && (st.IsDir() || st.Mode().IsRegular()) {
			set, err := bundle.OpenSet(path)
			if err != nil && bundle.IsVolumeSet(path) {
				// The set is refused before its head could be trusted:
				// reported as a bundle whose head cannot be read.
				rep, verr := verify.Verify(ctx, failingReader{err}, opts)
				return rep, verr, nil
			}
			if err == nil && set.Head.Frames != nil {
				a, err := bundle.NewArchive(set)
				if err == nil {
					defer a.Close()
					rep, verr := verify.VerifyArchive(ctx, a, opts)
					return rep, verr, nil
				}
			}
			// Anything else (a v1 bundle, a damaged head, a truncated
			// file) goes the streaming way, which reports it as verify
			// always has.
		}
	}
	file, _, err := openBundle(e, path)
	if err != nil {
		return nil, nil, err
	}
	defer file.Close()
	rep, verr := verify.Verify(ctx, file, opts)
	return rep, verr, nil
}
