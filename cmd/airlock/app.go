package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/install"
	"github.com/airlock-dev/airlock/internal/errclass"
	"github.com/airlock-dev/airlock/internal/meter"
	"github.com/airlock-dev/airlock/internal/suggest"
	"github.com/airlock-dev/airlock/policy"
)

// Exit codes, stable across releases and documented in `airlock help`.
const (
	exitOK       = 0 // success
	exitError    = 1 // could not run: I/O, network, source or release-description errors
	exitUsage    = 2 // bad command line
	exitRejected = 3 // the bundle failed checks: malformed, integrity, untrusted
)

const exitCodesHelp = `Exit status:
  0  success
  1  could not run: missing file, I/O or network error, invalid airlock.yaml, a source that cannot be packed
  2  usage error: unknown command or flag, missing argument
  3  verification failed: the bundle is untrusted (signatures, threshold), breaks the policy (expired,
     wrong channel, too old, missing SBOM or platform), is malformed, truncated or tampered, or is
     refused by install (replay, downgrade, sequence jump, unsafe path); check: drift found
`

// env carries the process's I/O so commands never reach for globals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	stderrTTY      bool
	getenv         func(string) string
	// progressEvery is how often progress is written when stderr is not a
	// terminal; <= 0 means 10 s.
	progressEvery time.Duration
}

func newEnv(stdin io.Reader, stdout, stderr *os.File) *env {
	return &env{stdin: stdin, stdout: stdout, stderr: stderr, stderrTTY: term.IsTerminal(int(stderr.Fd())), getenv: os.Getenv}
}

// command is one subcommand.
type command struct {
	name     string
	summary  string
	usage    string // after "airlock NAME "
	examples string
	// newFlags returns a fresh flag set bound to a fresh options struct and
	// the function that runs the command with the remaining arguments.
	setup func(fs *pflag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{packCommand(), signCommand(), verifyCommand(), inspectCommand(), mirrorCommand(), serveCommand(),
		installCommand(), statusCommand(), rollbackCommand(), checkCommand(), pruneCommand(), keyCommand(), versionCommand(),
		reportCommand(), auditCommand()}
}

// usageError is a bad command line (exit 2).
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

// Class makes a bad command line a usage error.
func (u *usageError) Class() errclass.Class { return errclass.Usage }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func run(ctx context.Context, args []string, e *env) int {
	cmds := commands()
	if len(args) == 0 {
		printMainHelp(e.stderr, cmds)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "--help":
		printMainHelp(e.stdout, cmds)
		return exitOK
	case "help":
		if len(args) == 1 {
			printMainHelp(e.stdout, cmds)
			return exitOK
		}
		name, args = args[1], []string{args[1], "--help"}
	case "--version":
		name, args = "version", []string{"version"}
	}
	for _, c := range cmds {
		if c.name == name {
			return runCommand(ctx, c, args[1:], e)
		}
	}
	names := make([]string, 0, len(cmds)+1)
	for _, c := range cmds {
		names = append(names, c.name)
	}
	fmt.Fprintf(e.stderr, "airlock: unknown command %q\n", name)
	if near := suggest.Nearest(name, append(names, "help")); near != "" {
		fmt.Fprintf(e.stderr, "Did you mean 'airlock %s'?\n", near)
	}
	fmt.Fprintf(e.stderr, "Run 'airlock help' for the list of commands.\n")
	return exitUsage
}

func runCommand(ctx context.Context, c command, args []string, e *env) int {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	exec := c.setup(fs)
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(e.stderr, "airlock %s: %v\n", c.name, err)
		if near := nearestFlag(fs, err); near != "" {
			fmt.Fprintf(e.stderr, "Did you mean --%s?\n", near)
		}
		fmt.Fprintf(e.stderr, "Run 'airlock %s --help' for usage.\n", c.name)
		return exitUsage
	}
	if *help {
		printCommandHelp(e.stdout, c, fs)
		return exitOK
	}
	err := exec(ctx, e, fs.Args())
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "airlock %s: %v\n", c.name, err)
	var sb *install.StateBehindError
	if errors.As(err, &sb) {
		fmt.Fprintf(e.stderr, "Run 'airlock status --root %s --repair' to rebuild it from the release records.\n", filepath.Dir(filepath.Dir(sb.State)))
	}
	var pe *policy.PermissionError
	if errors.As(err, &pe) {
		fmt.Fprintf(e.stderr, "Run 'chmod %s %s' (as OpenSSH requires for keys), or pass --insecure-permissions to use it anyway.\n", pe.Fix, pe.Path)
	}
	var he *hintedError
	if errors.As(err, &he) {
		fmt.Fprintf(e.stderr, "  hint: %s\n", he.hint)
	}
	code := exitCode(err)
	if code == exitUsage {
		fmt.Fprintf(e.stderr, "Run 'airlock %s --help' for usage.\n", c.name)
	}
	return code
}

// exitCodes is the one table from error classes (decided where each error
// is made, see internal/errclass) to the documented exit codes.
var exitCodes = map[errclass.Class]int{
	errclass.CouldNotRun: exitError,
	errclass.Rejected:    exitRejected,
	errclass.Usage:       exitUsage,
}

// exitCode maps an error to its exit code through its class.
func exitCode(err error) int { return exitCodes[errclass.Of(err)] }

// nearestFlag returns the flag of fs closest to the unknown one a parse
// error names, or "".
func nearestFlag(fs *pflag.FlagSet, err error) string {
	bad, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(bad, '='); i >= 0 {
		bad = bad[:i]
	}
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return suggest.Nearest(bad, names)
}

func printMainHelp(w io.Writer, cmds []command) {
	fmt.Fprintf(w, "airlock carries software releases across an air gap and proves, on the far side,\nthat what arrived is exactly what a trusted team shipped.\n\nUsage:\n  airlock COMMAND [flags]\n\nCommands:\n")
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n\n", "help", "show help for a command: airlock help pack")
	fmt.Fprint(w, exitCodesHelp)
	fmt.Fprintf(w, "\nDocumentation: docs/guide.md, docs/format.md, docs/airlock-yaml.md\n")
}

func printCommandHelp(w io.Writer, c command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  airlock %s %s\n\nFlags:\n%s", c.summary, c.name, c.usage, fs.FlagUsages())
	if c.examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s", c.examples)
	}
	fmt.Fprintf(w, "\n%s", exitHelp(c.name))
}

// version returns the module version airlock was built from: a release tag,
// a Go pseudo-version for builds from a git checkout, or "devel".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

// plural returns "1 artifact" or "3 artifacts".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func versionCommand() command {
	return command{
		name:     "version",
		summary:  "Print the airlock version and the bundle format version it reads and writes.",
		usage:    "[--json]",
		examples: "  airlock version\n  airlock version --json\n",
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			asJSON := fs.Bool("json", false, "print JSON")
			return func(_ context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected argument %q", args[0])
				}
				if *asJSON {
					return writeJSON(e.stdout, map[string]any{"version": version(), "bundleFormat": bundle.FormatVersion})
				}
				fmt.Fprintf(e.stdout, "airlock %s (bundle format %d)\n", version(), bundle.FormatVersion)
				return nil
			}
		},
	}
}

// humanBytes formats n with binary units.
func humanBytes(n int64) string { return meter.Bytes(n) }

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func joinOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return strings.Join(s, ", ")
}
