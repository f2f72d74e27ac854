package keyless

import (
	"fmt"
	"io"
	"os"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// MaxRootSize bounds a trusted root file (4 MiB; the public-good root is
// about 10 KiB).
const MaxRootSize = 4 << 20

// Root is a parsed Sigstore trusted root and the digest of its exact bytes.
type Root struct {
	// Digest is "sha256:<hex>" of the file's bytes, what policies and
	// airlock.yaml pin.
	Digest string
	// Source names the file, for messages.
	Source string
	// Raw is the exact bytes.
	Raw []byte

	tr *root.TrustedRoot
}

// ParseRoot parses a trusted_root.json (media type
// application/vnd.dev.sigstore.trustedroot+json;version=0.1, the file
// Sigstore's TUF repository distributes). When pin is not empty the bytes
// must hash to it ("sha256:<hex>"), or it fails with ErrBadRoot naming both
// digests. Duplicate JSON keys and trailing data are refused.
func ParseRoot(source string, data []byte, pin string) (*Root, error) {
	fail := func(format string, args ...any) error {
		return &RootError{Source: source, Err: fmt.Errorf("%w: "+format, append([]any{ErrBadRoot}, args...)...)}
	}
	if len(data) > MaxRootSize {
		return nil, fail("larger than %d bytes", MaxRootSize)
	}
	got := checked.Digest(data)
	if pin != "" && got != pin {
		return nil, fail("its digest is %s, the pinned digest is %s", got, pin)
	}
	if err := strictjson.Check(data); err != nil {
		return nil, fail("%v", err)
	}
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fail("%v", err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 || len(tr.RekorLogs()) == 0 {
		return nil, fail("it lists no Fulcio certificate authority or no Rekor log")
	}
	return &Root{Digest: got, Source: source, Raw: data, tr: tr}, nil
}

// LoadRoot reads (at most MaxRootSize bytes) and parses the trusted root at
// path; see ParseRoot.
func LoadRoot(path, pin string) (*Root, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &RootError{Source: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRootSize+1))
	if err != nil {
		return nil, &RootError{Source: path, Err: err}
	}
	return ParseRoot(path, data, pin)
}
