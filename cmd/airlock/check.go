package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/verify"
)

type checkFlags struct {
	root   string
	asJSON bool
}

func (f *checkFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "", "install root (required)")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON (also when drift is found)")
}

func (f *checkFlags) validate(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if f.root == "" {
		return usagef("--root is required")
	}
	return nil
}

func checkCommand() command {
	return command{
		name:    "check",
		summary: "Re-hash every installed file against the install state and report drift (exit 3 when found).",
		usage:   "--root DIR [--json]",
		examples: `  airlock check --root /opt/payments
  airlock check --root /opt/payments --json > drift.json
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &checkFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				rep, err := install.Check(ctx, f.root)
				if rep == nil {
					return err
				}
				if f.asJSON {
					if jerr := writeJSON(e.stdout, rep); jerr != nil {
						return jerr
					}
				} else {
					renderCheck(e.stdout, rep)
				}
				if errors.Is(err, install.ErrDrift) {
					// Drift is a failed check of installed bytes: exit 3.
					return &verify.Failure{Stage: "check", Err: err}
				}
				return err
			}
		},
	}
}

func renderCheck(w io.Writer, r *install.CheckReport) {
	for _, rc := range r.Releases {
		status := "ok"
		if len(rc.Findings) > 0 {
			status = "DRIFT"
		}
		cur := ""
		if rc.Current {
			cur = " (current)"
		}
		fmt.Fprintf(w, "%-5s  %s %s%s: %s\n", status, rc.Name, rc.Version, cur, rc.Dir)
		for _, f := range rc.Findings {
			fmt.Fprintf(w, "  %-8s %s", f.Kind, f.Path)
			if f.Expected != "" || f.Actual != "" {
				fmt.Fprintf(w, ": expected %s, found %s", orDash(f.Expected), orDash(f.Actual))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "checked %s (%s) in %s: %s\n", plural(r.Files, "file"), humanBytes(r.Bytes), plural(len(r.Releases), "release"), plural(r.Findings, "finding"))
}
