package install

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/policy"
	"github.com/airlock-dev/airlock/verify"
)

// Options configures Install. Root and Policy are required; the zero value
// of every other field works.
type Options struct {
	// Root is the install root (DIR). It is created (mode 0755) when missing.
	Root string
	// Policy decides trust, exactly as for `airlock verify`. Required.
	Policy *policy.Policy
	// Upstream re-verifies upstream image signatures a policy rule
	// requires (verify.Options.Upstream); without it such a rule fails.
	Upstream verify.UpstreamVerifier
	// AllowDowngrade accepts a bundle whose sequence is lower than the
	// highest accepted for its name, and only where the matching policy rule
	// sets allowDowngrade: true. Default false.
	AllowDowngrade bool
	// Mirror, when set, is a peer consumer of the same verification pass
	// (the CLI passes a registry pusher, *mirror.Peer). Its Finish runs before the
	// install is committed: a registry failure leaves the old release current.
	Mirror Peer
	// Now is the one time every check of this run uses; zero means time.Now().
	Now time.Time
	// Path names the bundle in the report and the state.
	Path string
	// Record, when set, is called once the bundle verified and its content
	// is staged, before the install is committed, with the verification
	// report: it writes the signed verification record (airlock install
	// --attest) and returns the record's digest, which the audit log
	// entry names. An error stops the install; nothing changes. It is also
	// called with the report of a rejected bundle (FAILED record), before
	// the refusal's audit line, which names it; an error then is
	// Result.RecordError.
	Record func(ctx context.Context, rep *verify.Report) (string, error)
	// Airlock is the airlock version written into the audit log entry
	// (DIR/.airlock/audit.log); "" writes none.
	Airlock string
	// AuditLog, when set, is a second audit log (a file outside the root):
	// every line the install appends to DIR/.airlock/audit.log, accepted
	// or refused, is appended there too, with the root as its target; a
	// refusal is recorded there even when DIR is not an install root yet.
	// "" (the default) writes none.
	AuditLog string
	// Progress receives bytes checked; nil reports nothing.
	Progress bundle.Progress
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
	// Failpoint, when set, is called with the name of each point in
	// Failpoints() as the install passes it. For crash tests only; nil in
	// production.
	Failpoint func(name string)
	// WrapWriter, when set, wraps the writer of every staged file. For
	// fault-injection tests only (a full disk); nil in production.
	WrapWriter func(w io.Writer) io.Writer
}

// Peer is another consumer of the verification pass an install rides on
// (the CLI composes a registry pusher): it gets the head once trust is
// decided, the body blobs install does not need, and the staged files of
// the blobs it Wants too. Install imports no registry code.
type Peer interface {
	// Trusted is called once trust and freshness are decided.
	Trusted(ctx context.Context, h *bundle.Head) error
	// Blob consumes a body blob install does not need.
	Blob(ctx context.Context, e *bundle.BodyEntry) error
	// Wants reports whether the peer needs a blob install stages.
	Wants(digest string) bool
	// BlobFile hands over a blob install staged (and checked) at path.
	BlobFile(ctx context.Context, d bundle.Descriptor, path string) error
	// Finish completes the peer's work after verification; verr is the
	// verification error, nil when the bundle verified.
	Finish(ctx context.Context, rep *verify.Report, verr error) error
}

// Failpoint names, in the order an install passes them.
const (
	// FailpointStaged follows each staged (written and fsynced) file.
	FailpointStaged = "staged-file"
	// FailpointBeforeRename precedes renaming staging to releases/NAME/VERSION.
	FailpointBeforeRename = "before-rename"
	// FailpointAfterRename follows that rename.
	FailpointAfterRename = "after-rename"
	// FailpointBeforeState precedes writing the state (the commit point).
	FailpointBeforeState = "before-state"
	// FailpointAfterState follows writing the state.
	FailpointAfterState = "after-state"
	// FailpointBeforeLink precedes switching DIR/current/NAME.
	FailpointBeforeLink = "before-link"
	// FailpointAfterLink follows switching DIR/current/NAME.
	FailpointAfterLink = "after-link"
	// FailpointAfterAudit follows appending the audit log entry, before its
	// write-ahead file is removed.
	FailpointAfterAudit = "after-audit"
)

// Failpoints returns every failpoint name in order.
func Failpoints() []string {
	return []string{FailpointStaged, FailpointBeforeRename, FailpointAfterRename, FailpointBeforeState, FailpointAfterState, FailpointBeforeLink, FailpointAfterLink, FailpointAfterAudit}
}

func (o *Options) validate() error {
	switch {
	case o.Root == "":
		return errors.New("install: no install root given")
	case o.Policy == nil:
		return verify.ErrNoPolicy
	}
	return nil
}

func (o *Options) failpoint(name string) {
	if o.Failpoint != nil {
		o.Failpoint(name)
	}
}
