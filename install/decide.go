package install

import (
	"fmt"
	"math"
	"time"
)

// MaxSequenceJump is how far (in sequence numbers, which are Unix seconds
// by default) a bundle's sequence may lie above both the highest accepted
// sequence and the current time: 10 years. A leaked key must not be able to
// freeze updates by signing sequence 2^64-1.
const MaxSequenceJump = 315360000

type action int

const (
	actFresh  action = iota // stage and install a new release
	actNoop                 // the bundle is the current release already
	actSwitch               // the bundle is an installed release: switch to it
)

// identity is what freshness compares.
type identity struct {
	name, version string
	sequence      uint64
	root          string
}

// decision is what an install will do.
type decision struct {
	act       action
	downgrade bool // the bundle's sequence is below the highest accepted
}

// decide applies the freshness rules (THREATS.md rule 6) to a bundle
// against what the root has accepted before: b, and aborted, the releases
// of the name's aborted records the state does not list (see records.go;
// their sequences count, and the identical bundle may be installed again).
// allowFlag is --allow-downgrade, ruleAllows the policy rule's
// allowDowngrade.
func decide(b *BundleState, aborted []Release, id identity, now time.Time, allowFlag, ruleAllows bool) (decision, error) {
	refuse := func(err error, format string, args ...any) (decision, error) {
		var highest uint64
		if b != nil {
			highest = b.HighestSequence
		}
		return decision{}, &FreshnessError{Name: id.name, Version: id.version, Sequence: id.sequence, Highest: highest, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	var highest uint64
	if b != nil {
		highest = b.HighestSequence
	}
	base := highest
	if u := now.Unix(); u > 0 && uint64(u) > base {
		base = uint64(u)
	}
	limit := uint64(math.MaxUint64)
	if base <= math.MaxUint64-MaxSequenceJump {
		limit = base + MaxSequenceJump
	}
	if id.sequence > limit {
		return refuse(ErrSequenceJump, "the sequence lies more than 10 years (%d) above both the highest accepted sequence and the current time (%d); a bundle like this would block every later update, so it is refused (was it signed with a wrong sequence, or with a leaked key?)", MaxSequenceJump, now.Unix())
	}
	if b == nil && len(aborted) == 0 {
		return decision{act: actFresh}, nil
	}
	if b == nil {
		b = &BundleState{}
	}
	retry := false // the bundle is the one an aborted record names
	for _, r := range aborted {
		if r.Root == id.root && r.Version == id.version && r.Sequence == id.sequence {
			retry = true
		}
	}
	downgrade := id.sequence < highest
	checkDowngrade := func() error {
		if !downgrade {
			return nil
		}
		if !allowFlag {
			_, err := refuse(ErrReplay, "a lower sequence than one already accepted: this is an older bundle (a replay or a rollback attack); to go back to an installed release use `airlock rollback`")
			return err
		}
		if !ruleAllows {
			_, err := refuse(ErrDowngradeNotAllowed, "a downgrade was requested, but the policy rule for %s does not set allowDowngrade: true", id.name)
			return err
		}
		return nil
	}
	// The same bundle as an installed release.
	for _, r := range b.Releases {
		if r.Root == id.root && r.Version == id.version && r.Sequence == id.sequence {
			if b.Current == r.Version {
				return decision{act: actNoop}, nil
			}
			if err := checkDowngrade(); err != nil {
				return decision{}, err
			}
			return decision{act: actSwitch, downgrade: downgrade}, nil
		}
	}
	// A different bundle reusing a sequence or a version this root accepted.
	type seen struct {
		version string
		seq     uint64
		root    string
	}
	var accepted []seen
	for _, r := range b.Releases {
		accepted = append(accepted, seen{r.Version, r.Sequence, r.Root})
	}
	for _, e := range b.History {
		if e.Action != ActionRollback {
			accepted = append(accepted, seen{e.To, e.Sequence, e.Root})
		}
	}
	for _, r := range aborted {
		accepted = append(accepted, seen{r.Version, r.Sequence, r.Root})
	}
	for _, a := range accepted {
		switch {
		case a.seq == id.sequence && a.root != id.root:
			return refuse(ErrReplay, "sequence %d was already accepted for a different bundle (version %s, root %s); every release needs a new sequence", id.sequence, a.version, a.root)
		case a.version == id.version && a.root != id.root:
			return refuse(ErrReplay, "version %s was already accepted with different content (root %s); a version is never reused for other bytes", id.version, a.root)
		}
	}
	if err := checkDowngrade(); err != nil {
		return decision{}, err
	}
	if r := b.release(id.version); r != nil {
		return refuse(ErrReplay, "version %s is already installed from sequence %d with the same content; a release directory is written once (pack a new version, or prune the old release after switching away from it)", id.version, r.Sequence)
	}
	if id.sequence == highest && !retry {
		return refuse(ErrReplay, "sequence %d was already accepted for another bundle", id.sequence)
	}
	return decision{act: actFresh, downgrade: downgrade}, nil
}
