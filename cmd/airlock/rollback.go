package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/install"
)

type rollbackFlags struct {
	root   string
	asJSON bool
}

func (f *rollbackFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "", "install root (required)")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
}

func (f *rollbackFlags) validate(args []string) error {
	if len(args) != 1 {
		return usagef("rollback takes exactly one bundle name")
	}
	if f.root == "" {
		return usagef("--root is required")
	}
	return nil
}

func rollbackCommand() command {
	return command{
		name:    "rollback",
		summary: "Point a bundle's current release back at the previous installed release (verified when it was installed).",
		usage:   "NAME --root DIR [--json]",
		examples: `  airlock rollback payments --root /opt/payments
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &rollbackFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				res, err := install.Rollback(ctx, f.root, args[0], install.RollbackOptions{Airlock: version()})
				if err != nil {
					if res != nil {
						for _, s := range res.AuditSkipped {
							fmt.Fprintf(e.stderr, "airlock rollback: %s\n", s)
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
				fmt.Fprintf(e.stdout, "rolled back %s from %s to %s (sequence %d)\n  current:  %s -> ../releases/%s/%s\n", res.Name, res.From, res.To, res.Sequence, res.Link, res.Name, res.To)
				return nil
			}
		},
	}
}
