package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/install"
)

type pruneFlags struct {
	root   string
	keep   int
	asJSON bool
}

func (f *pruneFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "", "install root (required)")
	fs.IntVar(&f.keep, "keep", 0, "how many of the newest releases to keep per bundle, at least 1 (required); the current release is always kept")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
}

func (f *pruneFlags) validate(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if f.root == "" {
		return usagef("--root is required")
	}
	if f.keep < 1 {
		return usagef("--keep N is required, N at least 1")
	}
	return nil
}

func pruneCommand() command {
	return command{
		name:    "prune",
		summary: "Remove old installed releases that are not current, keeping the N newest per bundle.",
		usage:   "--root DIR --keep N [--json]",
		examples: `  airlock prune --root /opt/payments --keep 3
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &pruneFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				res, err := install.Prune(ctx, f.root, f.keep, install.PruneOptions{Airlock: version()})
				if err != nil {
					if res != nil {
						for _, s := range res.AuditSkipped {
							fmt.Fprintf(e.stderr, "airlock prune: %s\n", s)
						}
					}
					return err
				}
				if f.asJSON {
					return writeJSON(e.stdout, res)
				}
				for _, r := range res.Repaired {
					fmt.Fprintf(e.stdout, "repaired: %s\n", r)
				}
				for _, p := range res.Removed {
					fmt.Fprintf(e.stdout, "removed %s %s (sequence %d): %s\n", p.Name, p.Version, p.Sequence, p.Dir)
				}
				fmt.Fprintf(e.stdout, "pruned %s, kept %s\n", plural(len(res.Removed), "release"), plural(res.Kept, "release"))
				return nil
			}
		},
	}
}
