package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/internal/safepath"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// StateSchemaVersion is the version of state.json this package reads and writes.
const StateSchemaVersion = 1

// MaxStateSize bounds state.json (64 MiB).
const MaxStateSize = 64 << 20

// State is DIR/.airlock/state.json: everything airlock installed under a root.
type State struct {
	SchemaVersion int `json:"schemaVersion"`
	// Bundles maps a bundle name to what is installed of it.
	Bundles map[string]*BundleState `json:"bundles"`
}

// BundleState is what is installed of one bundle name.
type BundleState struct {
	// Current is the version DIR/current/NAME points at; "" when none.
	Current string `json:"current"`
	// HighestSequence is the highest sequence ever accepted for the name. It
	// never decreases: not by rollback, downgrade or prune.
	HighestSequence uint64 `json:"highestSequence"`
	// Releases are the installed releases, by increasing sequence.
	Releases []Release `json:"releases"`
	// History lists every switch of the current release, oldest first.
	History []Event `json:"history"`
}

// Release is one installed release.
type Release struct {
	// Version and Sequence are the bundle's signed version and sequence.
	Version  string `json:"version"`
	Sequence uint64 `json:"sequence"`
	// Root is the bundle's root digest (of index.json).
	Root string `json:"root"`
	// ManifestDigest is the digest of the bundle's airlock/bundle.json.
	ManifestDigest string `json:"manifestDigest"`
	// Channel is the bundle's signed channel, "" for none.
	Channel string `json:"channel,omitempty"`
	// Created is the bundle's signed creation time.
	Created time.Time `json:"created"`
	// Installed is when this root accepted the bundle.
	Installed time.Time `json:"installed"`
	// Bundle is the path the bundle was installed from, as given.
	Bundle string `json:"bundle,omitempty"`
	// Signers are the keys whose signatures counted for the policy.
	Signers []Signer `json:"signers"`
	// Files are the installed files, sorted by target.
	Files []File `json:"files"`
	// Bytes is the sum of the file sizes.
	Bytes int64 `json:"bytes"`
	// Envelope is the signed DSSE envelope (airlock/signatures.json) the
	// release was installed from; absent in states older than issue 10.
	Envelope []byte `json:"envelope,omitempty"`
}

// Signer is a key whose signature counted for the release.
type Signer struct {
	// KeyID is the key's fingerprint, "sha256:<hex>".
	KeyID string `json:"keyid"`
	// Name is the key's name in the policy.
	Name string `json:"name"`
}

// File is one installed file.
type File struct {
	// Target is the file's path relative to the release directory.
	Target string `json:"target"`
	// Digest and Size are the signed digest and size of its content.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Mode is four octal digits, e.g. "0644" (permission bits only).
	Mode string `json:"mode"`
}

// Event is one switch of the current release.
type Event struct {
	Time time.Time `json:"time"`
	// Action is ActionInstall, ActionDowngrade or ActionRollback.
	Action string `json:"action"`
	// From is the previously current version, "" for none; To the new one.
	From string `json:"from"`
	To   string `json:"to"`
	// Sequence and Root identify the release switched to.
	Sequence uint64 `json:"sequence"`
	Root     string `json:"root"`
}

// Actions recorded in Event.Action.
const (
	ActionInstall   = "install"
	ActionDowngrade = "downgrade"
	ActionRollback  = "rollback"
)

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+-]*$`)
	modeRE    = regexp.MustCompile(`^0[0-7]{3}$`)
)

func validName(s string) bool    { return len(s) <= 128 && nameRE.MatchString(s) }
func validVersion(s string) bool { return len(s) <= 128 && versionRE.MatchString(s) }

// release returns the installed release with this version, or nil.
func (b *BundleState) release(version string) *Release {
	for i := range b.Releases {
		if b.Releases[i].Version == version {
			return &b.Releases[i]
		}
	}
	return nil
}

// clone returns a deep copy, so a failed commit leaves the loaded state alone.
func (s *State) clone() *State {
	c := &State{SchemaVersion: s.SchemaVersion, Bundles: make(map[string]*BundleState, len(s.Bundles))}
	for name, b := range s.Bundles {
		nb := *b
		nb.Releases = make([]Release, len(b.Releases))
		for i, r := range b.Releases {
			r.Signers = slices.Clone(r.Signers)
			r.Files = slices.Clone(r.Files)
			r.Envelope = slices.Clone(r.Envelope)
			nb.Releases[i] = r
		}
		nb.History = slices.Clone(b.History)
		c.Bundles[name] = &nb
	}
	return c
}

func (s *State) marshal() ([]byte, error) {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}

// readState loads state.json; a missing file is an empty state. It never
// follows a link and refuses anything it cannot fully account for. It
// notes the digest of the bytes it accepted in l.stateDigest ("" for a
// missing or refused file).
func (l *layout) readState() (*State, error) {
	path := filepath.Join(l.path, dirAirlock, fileState)
	l.stateDigest = ""
	bad := func(reason string, err error) *StateError {
		return &StateError{Path: path, Root: l.path, Reason: reason, Err: err}
	}
	// What Repair may set aside and rebuild from the records.
	broken := func(reason string, err error) error {
		e := bad(reason, err)
		e.Repairable = true
		return e
	}
	fi, err := l.air.Lstat(fileState)
	if errorsIsNotExist(err) {
		return &State{SchemaVersion: StateSchemaVersion, Bundles: map[string]*BundleState{}}, nil
	}
	if err != nil {
		return nil, bad("cannot be read: "+err.Error(), err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, broken("is a symbolic link (airlock never follows links in the install root)", nil)
	}
	if !fi.Mode().IsRegular() {
		return nil, broken("is not a regular file", nil)
	}
	f, err := l.air.Open(fileState)
	if err != nil {
		return nil, bad("cannot be opened: "+err.Error(), err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !os.SameFile(fi, st) {
		return nil, bad("changed while it was opened", err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxStateSize+1))
	if err != nil {
		return nil, bad("cannot be read: "+err.Error(), err)
	}
	if len(raw) > MaxStateSize {
		return nil, broken(fmt.Sprintf("is larger than %d bytes", MaxStateSize), nil)
	}
	// A newer airlock's state is not damaged: never set it aside.
	var head struct {
		SchemaVersion int `json:"schemaVersion"`
	}
	if json.Unmarshal(raw, &head) == nil && head.SchemaVersion > StateSchemaVersion {
		e := bad(fmt.Sprintf("has schemaVersion %d (this airlock reads %d)", head.SchemaVersion, StateSchemaVersion), nil)
		e.Fix = "it was written by a newer airlock: use that version on this root"
		return nil, e
	}
	var s State
	if err := strictjson.Unmarshal(raw, &s); err != nil {
		return nil, broken("is corrupted: "+err.Error(), err)
	}
	if err := s.validate(); err != nil {
		return nil, broken("is inconsistent: "+err.Error(), nil)
	}
	if s.Bundles == nil {
		s.Bundles = map[string]*BundleState{}
	}
	l.stateDigest = rawDigest(raw)
	return &s, nil
}

func rawDigest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// validate checks every value that reaches a path, a comparison or a link.
func (s *State) validate() error {
	if s.SchemaVersion != StateSchemaVersion {
		return fmt.Errorf("schemaVersion %d (this airlock reads %d)", s.SchemaVersion, StateSchemaVersion)
	}
	for name, b := range s.Bundles {
		if !validName(name) {
			return fmt.Errorf("bundle name %q", name)
		}
		if b == nil {
			return fmt.Errorf("bundle %s: null", name)
		}
		versions := map[string]bool{}
		for i, r := range b.Releases {
			where := fmt.Sprintf("bundle %s release %d", name, i)
			switch {
			case !validVersion(r.Version):
				return fmt.Errorf("%s: version %q", where, r.Version)
			case versions[r.Version]:
				return fmt.Errorf("%s: version %s listed twice", where, r.Version)
			case r.Sequence == 0 || r.Sequence > b.HighestSequence:
				return fmt.Errorf("%s: sequence %d outside 1..%d", where, r.Sequence, b.HighestSequence)
			case !checked.ValidDigest(r.Root) || !checked.ValidDigest(r.ManifestDigest):
				return fmt.Errorf("%s: root or manifest digest", where)
			case r.Bytes < 0:
				return fmt.Errorf("%s: negative bytes", where)
			}
			versions[r.Version] = true
			if err := checkFiles(r.Files); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		if b.Current != "" && !versions[b.Current] {
			return fmt.Errorf("bundle %s: current version %q is not an installed release", name, b.Current)
		}
		for i, e := range b.History {
			switch {
			case e.Action != ActionInstall && e.Action != ActionDowngrade && e.Action != ActionRollback:
				return fmt.Errorf("bundle %s history %d: action %q", name, i, e.Action)
			case !validVersion(e.To) || (e.From != "" && !validVersion(e.From)):
				return fmt.Errorf("bundle %s history %d: versions", name, i)
			case !checked.ValidDigest(e.Root) || e.Sequence == 0 || e.Sequence > b.HighestSequence:
				return fmt.Errorf("bundle %s history %d: root or sequence", name, i)
			}
		}
	}
	return nil
}

func checkFiles(files []File) error {
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := safepath.Check(f.Target); err != nil {
			return err
		}
		if seen[f.Target] {
			return fmt.Errorf("file %s listed twice", f.Target)
		}
		seen[f.Target] = true
		if !checked.ValidDigest(f.Digest) || f.Size < 0 || !modeRE.MatchString(f.Mode) {
			return fmt.Errorf("file %s: digest, size or mode", f.Target)
		}
	}
	for _, f := range files {
		for p := parentDir(f.Target); p != ""; p = parentDir(p) {
			if seen[p] {
				return fmt.Errorf("file %s lies inside file %s", f.Target, p)
			}
		}
	}
	return nil
}

// parseMode reads a recorded mode ("0644"); only permission bits exist.
func parseMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("mode %q", s)
	}
	return fs.FileMode(v), nil
}

func formatMode(m fs.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }

// writeState replaces state.json atomically: temporary file, fsync, rename,
// fsync of the directory.
func (l *layout) writeState(s *State) error {
	raw, err := s.marshal()
	if err != nil {
		return err
	}
	tmp := stateTempPrefix + randomSuffix()
	err = writeSynced(l.air, tmp, os.O_EXCL, raw)
	if err == nil {
		err = l.air.Rename(tmp, fileState)
	}
	if err != nil {
		l.air.Remove(tmp)
		return fmt.Errorf("write install state %s: %w", filepath.Join(l.path, dirAirlock, fileState), err)
	}
	l.stateDigest = rawDigest(raw)
	return syncDir(l.air, ".")
}

// writeSynced writes data to name under root (created with mode 0644, also
// under a restrictive umask; extra open flags in flags), fsyncs it and
// closes it. The caller renames or syncs the directory as it needs.
func writeSynced(root *os.Root, name string, flags int, data []byte) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|flags, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
