package install

import (
	"context"
	"errors"
	"io/fs"
	"sort"
	"time"
)

// Status is what an install root holds, for `airlock status`.
type Status struct {
	Root    string         `json:"root"`
	Bundles []BundleStatus `json:"bundles"` // by name
	// Repaired lists what was fixed in a root a crash left behind.
	Repaired []string `json:"repaired,omitempty"`
	// ReadOnly, when set, says why the root was read without taking the lock
	// (and so without repairs): another process holds it, or this user may
	// not write it.
	ReadOnly string `json:"readOnly,omitempty"`
}

// BundleStatus is what is installed of one bundle name.
type BundleStatus struct {
	Name            string `json:"name"`
	Current         string `json:"current"`
	HighestSequence uint64 `json:"highestSequence"`
	// Link is DIR/current/NAME and LinkTarget what it points at ("" when missing).
	Link       string          `json:"link"`
	LinkTarget string          `json:"linkTarget"`
	Releases   []ReleaseStatus `json:"releases"` // newest (highest sequence) first
	// LastChange is the latest switch of the current release.
	LastChange *Event `json:"lastChange,omitempty"`
}

// ReleaseStatus describes one installed release.
type ReleaseStatus struct {
	Version        string    `json:"version"`
	Sequence       uint64    `json:"sequence"`
	Current        bool      `json:"current"`
	Dir            string    `json:"dir"`
	Root           string    `json:"root"`
	ManifestDigest string    `json:"manifestDigest"`
	Channel        string    `json:"channel,omitempty"`
	Created        time.Time `json:"created"`
	Installed      time.Time `json:"installed"`
	Bundle         string    `json:"bundle,omitempty"`
	Signers        []Signer  `json:"signers"`
	Files          int       `json:"files"`
	Bytes          int64     `json:"bytes"`
}

// ReadStatus reports what is installed under root. It takes the lock when it
// can, and then first repairs what a crash left (a current link that
// disagrees with the state, unfinished staging, unrecorded release
// directories); when another process holds the lock it reads the state as
// it is. A root without airlock state is reported empty.
func ReadStatus(ctx context.Context, root string) (*Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Status{Root: root, Bundles: []BundleStatus{}}
	if err := precheck(root); err != nil {
		return nil, err
	}
	l, err := openLayout(root, false)
	if errorsIsNotExist(err) {
		if _, serr := statDir(root); serr != nil {
			return nil, serr
		}
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	defer l.close()
	var st *State
	lerr := l.acquireLock(time.Now())
	var le *LockedError
	switch {
	case lerr == nil:
		if st, err = l.readState(); err != nil {
			return nil, err
		}
		if s.Repaired, err = l.recover(st); err != nil {
			return nil, err
		}
	case errors.As(lerr, &le), errors.Is(lerr, fs.ErrPermission):
		s.ReadOnly = lerr.Error()
		if st, err = l.readState(); err != nil {
			return nil, err
		}
	default:
		return nil, lerr
	}
	for _, name := range sortedNames(st) {
		b := st.Bundles[name]
		bs := BundleStatus{Name: name, Current: b.Current, HighestSequence: b.HighestSequence, Link: CurrentLink(root, name), Releases: []ReleaseStatus{}}
		if l.cur != nil {
			bs.LinkTarget, _ = l.cur.Readlink(name)
		}
		if n := len(b.History); n > 0 {
			e := b.History[n-1]
			bs.LastChange = &e
		}
		for i := len(b.Releases) - 1; i >= 0; i-- {
			r := b.Releases[i]
			bs.Releases = append(bs.Releases, ReleaseStatus{
				Version: r.Version, Sequence: r.Sequence, Current: r.Version == b.Current, Dir: ReleaseDir(root, name, r.Version),
				Root: r.Root, ManifestDigest: r.ManifestDigest, Channel: r.Channel, Created: r.Created, Installed: r.Installed,
				Bundle: r.Bundle, Signers: r.Signers, Files: len(r.Files), Bytes: r.Bytes,
			})
		}
		s.Bundles = append(s.Bundles, bs)
	}
	return s, nil
}

func sortedNames(st *State) []string {
	names := make([]string, 0, len(st.Bundles))
	for n := range st.Bundles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
