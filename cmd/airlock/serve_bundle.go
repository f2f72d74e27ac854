package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/keyless"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/verify"
)

// runServeBundle is `airlock serve --bundle B --policy P`: the head is
// verified against the policy (signatures, rule; the body is not read in
// full), then the bundle is served read-only straight from its frames.
func runServeBundle(ctx context.Context, e *env, f *serveFlags) error {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	pol, err := policy.Load(f.policy)
	if err != nil {
		return err
	}
	set, err := bundle.OpenSet(f.bundle)
	if err != nil {
		return withJournalHint(f.bundle, err)
	}
	rc, err := set.Open()
	if err != nil {
		return err
	}
	var trusted *bundle.Head
	rep, err := verify.Verify(ctx, rc, verify.Options{
		Policy: pol, Path: f.bundle, Now: time.Now(), HeadOnly: true,
		Upstream: (&keyless.Checker{Path: f.bundle}).Check,
		Trusted:  func(_ context.Context, h *bundle.Head) error { trusted = h; return nil },
	})
	rc.Close()
	if err != nil {
		return fmt.Errorf("%s is not served: %w", f.bundle, err)
	}
	// The archive reads the body with the head that was verified; the head
	// read when the set was opened must be the same one.
	if trusted == nil || trusted.ManifestDigest != set.Head.ManifestDigest {
		return fmt.Errorf("%s is not served: %w: the bundle changed while it was being opened", f.bundle, bundle.ErrMalformed)
	}
	set.Head = trusted
	a, err := bundle.NewArchive(set)
	if err != nil {
		return err
	}
	defer a.Close()

	srv, err := registry.New(registry.Options{
		Bundle:      a,
		Addr:        f.addr,
		TLSCert:     f.tlsCert,
		TLSKey:      f.tlsKey,
		AllowRemote: f.allowRemote,
		Logger:      logger,
	})
	if err != nil {
		return serveOptionError(err, true)
	}
	scheme := "http"
	if srv.TLS() {
		scheme = "https"
	}
	signers := make([]string, 0, len(rep.Signers))
	for _, s := range rep.Signers {
		if s.Counted {
			signers = append(signers, s.Name)
		}
	}
	what := f.bundle
	if set.Volumes {
		what = fmt.Sprintf("%s (%d volumes)", f.bundle, len(set.Paths))
	}
	err = srv.Serve(ctx, func(addr string) {
		fmt.Fprintf(e.stderr, "head verified: %s %s signed by %s, policy %s (head only: signatures and rule; each blob is checked against its signed digest as it is served)\n",
			rep.Bundle.Name, rep.Bundle.Version, strings.Join(signers, ", "), f.policy)
		fmt.Fprintf(e.stderr, "serving %s read-only as an OCI registry on %s://%s (Ctrl-C to stop)\n", what, scheme, addr)
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "stopped")
	return nil
}
