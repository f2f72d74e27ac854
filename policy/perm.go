package policy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/airlock-dev/airlock/internal/keys"
)

// ErrPermissions reports a policy or public key file that users other than
// its owner may write: anyone who can write it decides what is trusted.
var ErrPermissions = errors.New("trust file writable by others")

// PermissionError names the file, its mode and the chmod that fixes it.
type PermissionError struct {
	Path string
	Mode fs.FileMode
	Fix  string // the chmod mode argument, e.g. "go-w"
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s is writable by group or others (mode %04o): whoever can write it decides which bundles are trusted; refusing to use it", e.Path, uint32(e.Mode.Perm()))
}

func (e *PermissionError) Unwrap() error { return ErrPermissions }

// LoadOptions configures LoadWith; the zero value is the strict default.
type LoadOptions struct {
	// InsecurePermissions uses policy and key files even when group or
	// others may write them. Default false: such files are refused with a
	// *PermissionError, as OpenSSH refuses such keys.
	InsecurePermissions bool
}

// LoadWith is Load with options.
func LoadWith(path string, opts LoadOptions) (*Policy, error) {
	read := func(p string, limit int64) ([]byte, error) {
		return readChecked(p, limit, !opts.InsecurePermissions)
	}
	data, err := read(path, MaxPolicySize)
	if err != nil {
		var pe *PermissionError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read the policy: %v", err), Err: err}
	}
	// Referenced files are public keys and Sigstore trusted roots; each parser
	// bounds its own kind further.
	return Parse(path, data, func(p string) ([]byte, error) { return read(p, max(keys.MaxKeyFileSize, MaxTrustedRootSize)) })
}

// readChecked reads up to limit bytes of path, fails if there is more, and
// with strict refuses a file (as opened, links followed) that group or
// others may write.
func readChecked(path string, limit int64, strict bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if strict {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return nil, &PermissionError{Path: path, Mode: fi.Mode(), Fix: "go-w"}
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
