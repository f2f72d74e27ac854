package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/install"
)

type auditFlags struct {
	root   string
	head   string
	asJSON bool
}

func (f *auditFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "", "read the audit log of this install root (DIR/.airlock/audit.log) instead of FILE")
	fs.StringVar(&f.head, "head", "", "verify: a head digest noted earlier; fail unless a line hashes to it (detects lines removed from the end)")
	fs.BoolVar(&f.asJSON, "json", false, "print the verified entries (and the head digest) as JSON")
}

// validate checks `audit SUBCOMMAND [FILE]` and returns the log's path.
func (f *auditFlags) validate(fs *pflag.FlagSet, args []string) (string, error) {
	if len(args) == 0 {
		return "", usagef("missing subcommand: verify or show")
	}
	if args[0] != "verify" && args[0] != "show" {
		return "", usagef("unknown subcommand %q: use verify or show", args[0])
	}
	switch {
	case f.root != "" && len(args) > 1:
		return "", usagef("give the log FILE or --root DIR, not both")
	case f.root == "" && len(args) != 2:
		return "", usagef("%s needs exactly one audit log FILE (or --root DIR)", args[0])
	case args[0] == "show" && fs.Changed("head"):
		return "", usagef("--head applies to verify only")
	}
	if f.root != "" {
		return install.AuditPath(f.root), nil
	}
	return args[1], nil
}

func auditCommand() command {
	return command{
		name:    "audit",
		summary: "Check and show a tamper-evident audit log of what mirror, install, rollback and prune did.",
		usage:   "verify|show FILE [--head DIGEST] [--json]   (or --root DIR for DIR/.airlock/audit.log)",
		examples: `  airlock audit verify /var/log/airlock/mirror-audit.log
  airlock audit verify --root /opt/payments --head sha256:3f1c...
  airlock audit show --root /opt/payments
  airlock audit show /var/log/airlock/mirror-audit.log --json | jq '.entries[] | select(.result=="rejected")'
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &auditFlags{}
			f.register(fs)
			return func(_ context.Context, e *env, args []string) error {
				path, err := f.validate(fs, args)
				if err != nil {
					return err
				}
				rep, verr := audit.VerifyFile(path, audit.VerifyOptions{Head: f.head})
				if rep == nil {
					return verr // could not read the file
				}
				if f.asJSON {
					out := struct {
						*audit.Report
						Verified bool   `json:"verified"`
						Error    string `json:"error,omitempty"`
					}{Report: rep, Verified: verr == nil}
					if verr != nil {
						out.Error = verr.Error()
					}
					if err := writeJSON(e.stdout, out); err != nil {
						return err
					}
					return verr
				}
				if args[0] == "show" {
					renderAuditTable(e.stdout, rep)
				} else {
					renderAuditHistory(e.stdout, rep)
				}
				renderAuditVerdict(e.stdout, rep, verr)
				return verr
			}
		},
	}
}

// renderAuditHistory prints one line per entry: what `audit verify` shows.
func renderAuditHistory(w io.Writer, rep *audit.Report) {
	for _, en := range rep.Entries {
		fmt.Fprintf(w, "%4d  %s  %-8s %-8s %s", en.Seq, en.Time.Format(time.RFC3339), en.Operation, en.Result, auditSubject(en))
		if what := auditWhat(en); what != "" {
			fmt.Fprintf(w, ": %s", what)
		}
		fmt.Fprintln(w)
	}
}

// auditWhat is an entry's outcome, and for a refused run its class and
// reason.
func auditWhat(en audit.Entry) string {
	what := en.Outcome
	if en.Reason != "" {
		if en.Class != "" {
			what = joinNonEmpty(what, en.Class+": "+en.Reason)
		} else {
			what = joinNonEmpty(what, en.Reason)
		}
	}
	return what
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// renderAuditTable prints the entries as a table with every column.
func renderAuditTable(w io.Writer, rep *audit.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SEQ\tTIME\tOPERATION\tRESULT\tBUNDLE\tROOT\tPOLICY\tSIGNERS\tRECORD\tTARGET\tOUTCOME\n")
	for _, en := range rep.Entries {
		root, pol, rec := "-", "-", "-"
		if en.Bundle != nil && en.Bundle.Root != "" {
			root = shortDigest(en.Bundle.Root)
		} else if en.Claimed != nil && en.Claimed.Root != "" {
			root = shortDigest(en.Claimed.Root) + " (claimed)"
		}
		if en.Policy != nil {
			pol = shortDigest(en.Policy.Digest)
		}
		if en.Record != "" {
			rec = shortDigest(en.Record)
		}
		var signers []string
		for _, s := range en.Signers {
			signers = append(signers, joinOr([]string{s.Name}, shortDigest(s.KeyID)))
		}
		outcome := auditWhat(en)
		if en.Repaired != "" {
			outcome += " [" + en.Repaired + "]"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", en.Seq, en.Time.Format(time.RFC3339), en.Operation, en.Result,
			auditSubject(en), root, pol, joinOr(signers, "-"), rec, joinOr([]string{en.Target}, "-"), joinOr([]string{outcome}, "-"))
	}
	tw.Flush()
}

// auditSubject names the entry's bundle; claims of a bundle that did not
// pass its signatures or the policy are marked unverified.
func auditSubject(en audit.Entry) string {
	switch b := en.Bundle; {
	case b != nil && b.Name != "":
		return fmt.Sprintf("%s %s (seq %d)", b.Name, b.Version, b.Sequence)
	case en.Claimed != nil && en.Claimed.Name != "":
		c := en.Claimed
		return fmt.Sprintf("%s %s (seq %d, unverified claim)", c.Name, c.Version, c.Sequence)
	case en.Claimed != nil && en.Claimed.Path != "":
		return "file " + en.Claimed.Path + " (unread)"
	}
	return "-"
}

func renderAuditVerdict(w io.Writer, rep *audit.Report, verr error) {
	if verr != nil {
		fmt.Fprintf(w, "BROKEN  %v\n", verr)
		return
	}
	fmt.Fprintf(w, "OK  %s: %s, hash chain intact", rep.File, entries(len(rep.Entries)))
	if rep.Head != "" {
		fmt.Fprintf(w, "; head %s (note it to detect truncation later: --head)", rep.Head)
	}
	fmt.Fprintln(w)
	if p := rep.Partial; p != nil {
		fmt.Fprintf(w, "note: %d bytes after the last complete line (an interrupted append, %s); the next append removes them\n", p.Bytes, p.Digest)
	}
}

func entries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}
