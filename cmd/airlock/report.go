package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/internal/atomicfile"
	"github.com/airlock-dev/airlock/keyless"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/report"
	"github.com/airlock-dev/airlock/verify"
)

type reportFlags struct {
	policy   string
	output   string
	format   string
	headOnly bool
	quiet    bool
}

func (f *reportFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.policy, "policy", "p", "", "trust policy (required; the report shows the verification against it)")
	fs.StringVarP(&f.output, "output", "o", "", "write the report to this file (default: stdout)")
	fs.StringVar(&f.format, "format", "", "html, md or json (default: from the -o extension, else html)")
	fs.BoolVar(&f.headOnly, "head-only", false, "decide from the signed head alone, without reading the body (fast on any size; the report says no content digest was checked)")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bars")
}

func (f *reportFlags) validate(args []string) error {
	if len(args) != 1 {
		return usagef("report takes exactly one bundle path")
	}
	if f.policy == "" {
		return usagef("--policy is required: the report shows the verification against a trust policy")
	}
	if f.format == "" {
		switch strings.ToLower(filepath.Ext(f.output)) {
		case ".md", ".markdown":
			f.format = "md"
		case ".json":
			f.format = "json"
		default:
			f.format = "html"
		}
	}
	switch f.format {
	case "html", "md", "json":
		return nil
	}
	return usagef("--format %q: choose html, md or json", f.format)
}

func reportCommand() command {
	return command{
		name:    "report",
		summary: "Verify a bundle and write a self-contained report for a reviewer: verdict, policy, signers, contents, digests, SBOM components.",
		usage:   "BUNDLE --policy policy.yaml [-o report.html] [--format html|md|json] [--head-only]",
		examples: `  airlock report payments-1.4.2.airlock --policy policy.yaml -o payments-1.4.2.html
  airlock report payments-1.4.2.airlock --policy policy.yaml -o payments-1.4.2.md
  airlock report payments-1.4.2.airlock --policy policy.yaml --head-only -o quick.html
  chromium --headless --print-to-pdf=payments-1.4.2.pdf file://$PWD/payments-1.4.2.html
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &reportFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				return runReport(ctx, e, f, args[0])
			}
		},
	}
}

func runReport(ctx context.Context, e *env, f *reportFlags, path string) error {
	pol, err := policy.Load(f.policy)
	if err != nil {
		return err
	}
	file, _, err := openBundle(e, path)
	if err != nil {
		return err
	}
	defer file.Close()
	prog := newProgress(e, f.quiet || f.output == "", "report")
	col := &report.Collector{Progress: prog.bundleProgress()}
	rep, verr := verify.Verify(ctx, file, verify.Options{
		Policy: pol, Path: reportPath(path), Now: time.Now(), HeadOnly: f.headOnly,
		Trusted: col.Trusted, Blob: col.Blob,
		Upstream: (&keyless.Checker{Path: path}).Check,
	})
	prog.wait()
	if verr != nil {
		verr = withJournalHint(path, verr)
		rep.Error = verr.Error()
		if !verify.IsFailure(verr) {
			// Could not verify (I/O, interrupted): no verdict to report.
			return verr
		}
	}
	doc := report.Build(rep, col, report.Options{Airlock: version()})
	var buf bytes.Buffer
	switch f.format {
	case "md":
		err = doc.Markdown(&buf)
	case "json":
		err = writeJSON(&buf, doc)
	default:
		err = doc.HTML(&buf)
	}
	if err != nil {
		return fmt.Errorf("render the report: %w", err)
	}
	if f.output == "" {
		if _, err := e.stdout.Write(buf.Bytes()); err != nil {
			return err
		}
		return verr
	}
	out, err := atomicfile.Create(f.output, 0o644)
	if err != nil {
		return err
	}
	defer out.Abort()
	if _, err := out.Write(buf.Bytes()); err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%s  report written to %s\n", doc.Verdict, f.output)
	return verr
}
