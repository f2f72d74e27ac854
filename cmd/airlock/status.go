package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/install"
)

type statusFlags struct {
	root   string
	asJSON bool
	repair bool
}

func (f *statusFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "", "install root (required)")
	fs.BoolVar(&f.asJSON, "json", false, "print the status as JSON")
	fs.BoolVar(&f.repair, "repair", false, "rebuild a missing or older state.json from the release records first (never lowers the highest accepted sequence)")
}

func (f *statusFlags) validate(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if f.root == "" {
		return usagef("--root is required")
	}
	return nil
}

func statusCommand() command {
	return command{
		name:    "status",
		summary: "Show what is installed under a root and which release is current, from which bundle, signed by whom, when.",
		usage:   "--root DIR [--json] [--repair]",
		examples: `  airlock status --root /opt/payments
  airlock status --root /opt/payments --json
  airlock status --root /opt/payments --repair
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &statusFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				var repaired []string
				if f.repair {
					done, err := install.Repair(ctx, f.root)
					if err != nil {
						return err
					}
					repaired = done
				}
				st, err := install.ReadStatus(ctx, f.root)
				if err != nil {
					return err
				}
				st.Repaired = append(repaired, st.Repaired...)
				if f.asJSON {
					return writeJSON(e.stdout, st)
				}
				renderStatus(e.stdout, st)
				return nil
			}
		},
	}
}

func renderStatus(w io.Writer, s *install.Status) {
	fmt.Fprintf(w, "Install root: %s\n", s.Root)
	if s.ReadOnly != "" {
		fmt.Fprintf(w, "note: read without the lock (%s)\n", s.ReadOnly)
	}
	for _, r := range s.Repaired {
		fmt.Fprintf(w, "repaired: %s\n", r)
	}
	if len(s.Bundles) == 0 {
		fmt.Fprintf(w, "Nothing installed.\n")
		return
	}
	for _, b := range s.Bundles {
		cur := b.Current
		if cur == "" {
			cur = "none"
		}
		fmt.Fprintf(w, "\n%s: current %s (highest sequence accepted: %d)\n", b.Name, cur, b.HighestSequence)
		link := b.LinkTarget
		if link == "" {
			link = "(missing)"
		}
		fmt.Fprintf(w, "  link:     %s -> %s\n", b.Link, link)
		if e := b.LastChange; e != nil {
			from := e.From
			if from == "" {
				from = "nothing"
			}
			fmt.Fprintf(w, "  changed:  %s %s, %s -> %s\n", e.Time.Format(time.RFC3339), e.Action, from, e.To)
		}
		for _, r := range b.Releases {
			mark := " "
			if r.Current {
				mark = "*"
			}
			var signers []string
			for _, sg := range r.Signers {
				signers = append(signers, fmt.Sprintf("%s (%s)", sg.Name, shortDigest(sg.KeyID)))
			}
			fmt.Fprintf(w, "  %s %-12s sequence %d, installed %s, %s, %s\n", mark, r.Version, r.Sequence, r.Installed.Format(time.RFC3339), plural(r.Files, "file"), humanBytes(r.Bytes))
			fmt.Fprintf(w, "      bundle:   %s (root %s, created %s", orDash(r.Bundle), shortDigest(r.Root), r.Created.Format(time.RFC3339))
			if r.Channel != "" {
				fmt.Fprintf(w, ", channel %s", r.Channel)
			}
			fmt.Fprintf(w, ")\n      signed:   %s\n", strings.Join(signers, ", "))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
