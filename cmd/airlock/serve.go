package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/registry"
)

type serveFlags struct {
	data        string
	addr        string
	tlsCert     string
	tlsKey      string
	allowRemote bool
	verbose     bool
	bundle      string
	policy      string
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.data, "data", "", "storage directory, created if missing (required unless --bundle)")
	fs.StringVar(&f.addr, "addr", registry.DefaultAddr, "listen address host:port")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain); needs --tls-key")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&f.allowRemote, "allow-remote", false, "allow listening on a non-loopback address (the registry has no authentication)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log every request, and the start and stop, on standard error")
	fs.StringVar(&f.bundle, "bundle", "", "serve this bundle (file, volume or directory of volumes) read-only, straight from its frames, instead of --data")
	fs.StringVarP(&f.policy, "policy", "p", "", "trust policy the bundle's head must pass before anything is served (required with --bundle)")
}

func (f *serveFlags) validate(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	switch {
	case f.bundle != "" && f.data != "":
		return usagef("--bundle and --data exclude each other: a bundle is served read-only from its file")
	case f.bundle != "" && f.policy == "":
		return usagef("--policy is required with --bundle: airlock never serves a bundle it has not verified")
	case f.bundle == "" && f.policy != "":
		return usagef("--policy goes with --bundle (a --data registry serves what was pushed into it)")
	case f.bundle == "" && f.data == "":
		return usagef("--data is required: the directory that holds the registry's content (or --bundle FILE --policy P to serve a bundle read-only)")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	return nil
}

func serveCommand() command {
	return command{
		name:    "serve",
		summary: "Run an OCI registry (CNCF distribution, filesystem storage) for sites that have none, or serve a bundle read-only.",
		usage:   "--data DIR | --bundle BUNDLE --policy policy.yaml [--addr 127.0.0.1:5000] [--tls-cert FILE --tls-key FILE] [--allow-remote]",
		examples: `  airlock serve --data /srv/airlock-registry
  airlock serve --data /srv/airlock-registry --addr 127.0.0.1:5001 -v
  airlock serve --data /srv/airlock-registry --addr 0.0.0.0:5000 --allow-remote \
      --tls-cert registry.crt --tls-key registry.key
  # then, in another shell:
  airlock mirror payments-1.4.2.airlock --to 127.0.0.1:5000 --policy policy.yaml

  # Serve a bundle read-only, straight from the media (a file, a volume or a
  # directory of volumes), once its head passes the policy:
  airlock serve --bundle /media/usb/payments-1.4.2.airlock --policy policy.yaml
  crane pull --insecure 127.0.0.1:5000/payments/api:1.4.2 api.tar

The registry has no authentication: anyone who reaches the address can read, push and
delete (with --bundle: only read; every write is answered 405 UNSUPPORTED). It listens
on loopback unless --allow-remote is given. With --bundle, the head's signatures and
policy rule are checked before serving (head only: the body is not read in full); every
frame is checked against its signed sha256 before it is decoded; a whole blob is checked
against its digest as it is served (one that fails is cut off, never delivered whole),
and a range of a blob is served only once the whole blob has matched its digest. Ctrl-C (SIGINT) or SIGTERM
stops it after in-flight requests finish (up to 10s); the exit status is then 0.
See docs/commands/serve.md.
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &serveFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				if f.bundle != "" {
					return runServeBundle(ctx, e, f)
				}
				return runServe(ctx, e, f)
			}
		},
	}
}

func runServe(ctx context.Context, e *env, f *serveFlags) error {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	restore := routeDistributionLogs(logger)
	defer restore()

	srv, err := registry.New(registry.Options{
		Data:        f.data,
		Addr:        f.addr,
		TLSCert:     f.tlsCert,
		TLSKey:      f.tlsKey,
		AllowRemote: f.allowRemote,
		Logger:      logger,
	})
	if err != nil {
		return serveOptionError(err, false)
	}
	data, err := filepath.Abs(f.data)
	if err != nil {
		data = f.data
	}
	scheme := "http"
	if srv.TLS() {
		scheme = "https"
	}
	err = srv.Serve(ctx, func(addr string) {
		fmt.Fprintf(e.stderr, "serving an OCI registry on %s://%s, data in %s (Ctrl-C to stop)\n", scheme, addr, data)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "stopped; the content stays in %s\n", data)
	return nil
}

// routeDistributionLogs sends the CNCF distribution library's log records,
// which it writes through the process-wide logrus logger, to logger:
// warnings and errors only (its info records include one line per
// request), and of failed requests only those answered with 5xx. It returns a function that restores the previous logrus setup.
func routeDistributionLogs(logger *slog.Logger) (restore func()) {
	std := logrus.StandardLogger()
	prevOut, prevLevel := std.Out, std.GetLevel()
	std.SetOutput(io.Discard)
	std.SetLevel(logrus.WarnLevel)
	hooks := logrus.LevelHooks{}
	hooks.Add(slogHook{logger})
	prevHooks := std.ReplaceHooks(hooks)
	return func() {
		std.ReplaceHooks(prevHooks)
		std.SetLevel(prevLevel)
		std.SetOutput(prevOut)
	}
}

// libraryClientErrors are the starts of the library's log messages that
// report a client's mistake (answered with 4xx) or normal traffic, without
// the status field the hook filters on.
var libraryClientErrors = []string{
	"looking up blob with canonical target",       // every read of a blob by its sha512 name
	"canonical digest does match provided digest", // an upload whose content is not its digest (400)
	"error canceling upload after error",          // follows the one above
	"payload digest does not match",               // a manifest pushed by a digest it does not have (400)
	"error closing blobwriter: already closed",    // every cancelled upload (DELETE of an upload)
}

// slogHook forwards logrus entries to a slog logger.
type slogHook struct{ logger *slog.Logger }

func (slogHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h slogHook) Fire(entry *logrus.Entry) error {
	// The library logs every 4xx answer (a pusher's HEAD of a blob it has
	// not sent yet is a 404) as an error; those are normal traffic.
	if status, ok := entry.Data["http.response.status"].(int); ok && status < 500 {
		return nil
	}
	for _, prefix := range libraryClientErrors {
		if strings.HasPrefix(entry.Message, prefix) {
			return nil
		}
	}
	level := slog.LevelWarn
	if entry.Level <= logrus.ErrorLevel {
		level = slog.LevelError
	}
	attrs := make([]any, 0, 2+2*len(entry.Data))
	attrs = append(attrs, "component", "distribution")
	for k, v := range entry.Data {
		if k == "go.version" {
			continue
		}
		attrs = append(attrs, k, v)
	}
	h.logger.Log(context.Background(), level, entry.Message, attrs...)
	return nil
}

// serveFlags names the flag behind each registry.Options field.
var serveOptionFlags = map[string]string{"Addr": "--addr", "Data": "--data", "TLSCert": "--tls-cert", "TLSKey": "--tls-key", "AllowRemote": "--allow-remote", "Bundle": "--bundle"}

// serveOptionError turns the library's option error (facts: field, value,
// cause) into one that names the flag and says what to do; bundle says the
// server was to serve a bundle (read-only).
func serveOptionError(err error, bundle bool) error {
	var oe *registry.OptionsError
	if !errors.As(err, &oe) {
		return err
	}
	flag := serveOptionFlags[oe.Option]
	hint := oe.Hint
	switch {
	case errors.Is(err, registry.ErrRemoteListen):
		hint = registry.RemoteRisk(bundle) + "; listen on 127.0.0.1, or pass --allow-remote if that is intended"
	case oe.Option == "TLSKey" && oe.Value == "":
		hint += ": pass --tls-key too"
	case oe.Option == "TLSCert" && oe.Value == "":
		hint += ": pass --tls-cert too"
	}
	msg := fmt.Sprintf("%s %q: %v", flag, oe.Value, oe.Err)
	if hint != "" {
		msg += " (" + hint + ")"
	}
	if oe.Option == "Addr" {
		return usagef("%s", msg)
	}
	return &flagError{msg: msg, err: err}
}

// flagError is a library error retold by the CLI with its flag and what
// to do; its class and sentinels stay those of the library error.
type flagError struct {
	msg string
	err error
}

func (e *flagError) Error() string { return e.msg }
func (e *flagError) Unwrap() error { return e.err }
