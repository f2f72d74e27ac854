package bundle

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/airlock-dev/airlock/internal/errclass"
	"github.com/airlock-dev/airlock/internal/strictjson"
)

// What a bundle signature covers: an in-toto Statement (v1) whose subject is
// the bundle's root (the sha256 of index.json) and whose predicate names the
// bundle, carried in a DSSE envelope. docs/format.md describes every field.
const (
	// StatementType is the in-toto Statement type.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType identifies airlock's bundle predicate.
	PredicateType = "https://airlock.dev/bundle/v1"
	// PayloadType is the DSSE payload type of the statement.
	PayloadType = "application/vnd.in-toto+json"
	// DefaultValidity is how long a bundle is valid when no expiry is given.
	DefaultValidity = 90 * 24 * time.Hour
)

var (
	// ErrStatement reports a statement or envelope that does not describe
	// this bundle, or that breaks the rules for one (a verification failure).
	ErrStatement = errclass.New(errclass.Rejected, "invalid bundle statement")
	// ErrPayloadType reports a DSSE envelope whose payload type is not PayloadType.
	ErrPayloadType = errclass.New(errclass.Rejected, "unexpected DSSE payload type")
)

// Statement is the signed in-toto Statement.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is an in-toto subject.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what a signer vouches for besides the root digest.
type Predicate struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Sequence only ever increases for a bundle name; installs refuse lower ones.
	Sequence uint64    `json:"sequence"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	// Channel binds the bundle to an audience (e.g. "prod"); empty for none.
	Channel string `json:"channel,omitempty"`
	// Manifest is the descriptor of airlock/bundle.json.
	Manifest Descriptor `json:"manifest"`
}

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse).
type Envelope struct {
	PayloadType string              `json:"payloadType"`
	Payload     string              `json:"payload"`
	Signatures  []EnvelopeSignature `json:"signatures"`
}

// EnvelopeSignature is one signature of an envelope. KeyID is the signer's
// key fingerprint ("sha256:<hex>" of the DER public key); it is a hint only:
// verifiers try the keys their policy trusts.
type EnvelopeSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// Signer signs for a key. Implementations wrap a key file, a KMS or an HSM;
// the format does not change with them.
type Signer interface {
	// KeyID returns the "sha256:<hex>" fingerprint of the signer's public key.
	KeyID() string
	// Sign signs message exactly as given (the DSSE pre-authentication encoding).
	Sign(ctx context.Context, message []byte) ([]byte, error)
}

// StatementOptions sets the signed fields that are not derived from the content.
type StatementOptions struct {
	// Sequence must grow with every release of a bundle name; 0 means the
	// creation time in Unix seconds, so later packs sort higher.
	Sequence uint64
	// Expires is the end of validity; the zero value means Created + 90 days.
	Expires time.Time
	// Channel binds the bundle to an audience; empty means none.
	Channel string
}

// channelRE is the channel grammar, shared with the policy file: letters,
// digits, '.', '_', '-' and '/', starting with a letter or digit, at most 128.
var channelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$`)

// ValidChannel reports whether ch is a valid channel name.
func ValidChannel(ch string) bool { return channelRE.MatchString(ch) }

// newStatement builds the statement for a planned bundle.
func newStatement(m *Manifest, manifestDigest string, manifestSize int64, o StatementOptions) (*Statement, error) {
	seq := o.Sequence
	if seq == 0 {
		if m.Created.Unix() <= 0 {
			return nil, fmt.Errorf("%w: cannot derive a sequence from creation time %s; pass one explicitly", ErrStatement, m.Created)
		}
		seq = uint64(m.Created.Unix())
	}
	exp := o.Expires
	if exp.IsZero() {
		exp = m.Created.Add(DefaultValidity)
	}
	exp = exp.UTC().Truncate(time.Second)
	if !exp.After(m.Created) {
		return nil, fmt.Errorf("%w: expiry %s is not after creation %s", ErrStatement, exp.Format(time.RFC3339), m.Created.Format(time.RFC3339))
	}
	if o.Channel != "" && !channelRE.MatchString(o.Channel) {
		return nil, fmt.Errorf("%w: channel %q must be letters, digits, '.', '_', '-' or '/' (at most 128, starting with a letter or digit)", ErrStatement, o.Channel)
	}
	return &Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: EntryIndex, Digest: map[string]string{"sha256": strings.TrimPrefix(m.Root.Digest, "sha256:")}}},
		PredicateType: PredicateType,
		Predicate: Predicate{
			Name: m.Name, Version: m.Version, Sequence: seq, Created: m.Created, Expires: exp, Channel: o.Channel,
			Manifest: Descriptor{MediaType: MediaTypeBundleManifest, Digest: manifestDigest, Size: manifestSize},
		},
	}, nil
}

// newEnvelope wraps a statement in an unsigned envelope.
func newEnvelope(st *Statement) (*Envelope, error) {
	payload, err := marshalNoEscape(st)
	if err != nil {
		return nil, err
	}
	return &Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: []EnvelopeSignature{}}, nil
}

// PAE returns the DSSE pre-authentication encoding of the envelope's
// payload: the exact bytes every signature covers. The payload type is bound
// into it, so a signature cannot be replayed under another type.
func (e *Envelope) PAE() ([]byte, error) {
	payload, err := base64.StdEncoding.Strict().DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64: %v", ErrStatement, err)
	}
	return dsse.PAE(e.PayloadType, payload), nil
}

// sign adds or replaces the signature of each signer (one per key id).
func (e *Envelope) sign(ctx context.Context, signers []Signer) error {
	pae, err := e.PAE()
	if err != nil {
		return err
	}
	for _, s := range signers {
		id := s.KeyID()
		if !validDigest(id) {
			return fmt.Errorf("signer key id %q is not a sha256 fingerprint", id)
		}
		sig, err := s.Sign(ctx, pae)
		if err != nil {
			return fmt.Errorf("sign with key %s: %w", id, err)
		}
		es := EnvelopeSignature{KeyID: id, Sig: base64.StdEncoding.EncodeToString(sig)}
		replaced := false
		for i := range e.Signatures {
			if e.Signatures[i].KeyID == id {
				e.Signatures[i], replaced = es, true
			}
		}
		if !replaced {
			e.Signatures = append(e.Signatures, es)
		}
	}
	if len(e.Signatures) > MaxSignatures {
		return overLimit("%d signatures exceed %d", len(e.Signatures), MaxSignatures)
	}
	sort.Slice(e.Signatures, func(i, j int) bool { return e.Signatures[i].KeyID < e.Signatures[j].KeyID })
	return nil
}

// ParseEnvelope parses the signatures entry strictly: exact keys, no
// duplicates, the airlock payload type, at most MaxSignatures signatures,
// each a base64 signature with a fingerprint key id.
func ParseEnvelope(raw []byte) (*Envelope, error) {
	var e Envelope
	if err := strictjson.Unmarshal(raw, &e); err != nil {
		return nil, &EntryError{Entry: EntrySignatures, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	if e.PayloadType != PayloadType {
		return nil, &EntryError{Entry: EntrySignatures, Err: fmt.Errorf("%w %q (want %q)", ErrPayloadType, clip(e.PayloadType), PayloadType)}
	}
	if len(e.Signatures) > MaxSignatures {
		return nil, &EntryError{Entry: EntrySignatures, Err: overLimit("%d signatures exceed %d", len(e.Signatures), MaxSignatures)}
	}
	for i, s := range e.Signatures {
		if !validDigest(s.KeyID) {
			return nil, &EntryError{Entry: EntrySignatures, Err: malformed("signature %d: key id %q is not sha256:<hex>", i, clip(s.KeyID))}
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(s.Sig); err != nil || len(s.Sig) > 8192 {
			return nil, &EntryError{Entry: EntrySignatures, Err: malformed("signature %d (key %s) is not base64 of at most 6 KiB", i, s.KeyID)}
		}
	}
	return &e, nil
}

// Statement decodes and checks the envelope's statement against the head it
// travels in: same root, same bundle manifest, same name, version and
// creation time, a sane validity window.
func (e *Envelope) Statement(h *Head) (*Statement, error) {
	payload, err := base64.StdEncoding.Strict().DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64", ErrStatement)
	}
	// The times first: a spelling encoding/json cannot parse is refused
	// with the same message as one it parses leniently.
	var top struct {
		Predicate json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &top); err == nil && top.Predicate != nil {
		if err := checkStamps("statement predicate", top.Predicate, "created", "expires"); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStatement, err)
		}
	}
	var st Statement
	if err := strictjson.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStatement, err)
	}

	p := st.Predicate
	m := &h.Manifest
	switch {
	case st.Type != StatementType:
		return nil, fmt.Errorf("%w: _type %q", ErrStatement, clip(st.Type))
	case st.PredicateType != PredicateType:
		return nil, fmt.Errorf("%w: predicateType %q", ErrStatement, clip(st.PredicateType))
	case len(st.Subject) != 1 || len(st.Subject[0].Digest) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != m.Root.Digest:
		return nil, fmt.Errorf("%w: the statement's subject is not this bundle's root %s (an envelope from another bundle?)", ErrStatement, m.Root.Digest)
	case p.Manifest != (Descriptor{MediaType: MediaTypeBundleManifest, Digest: h.ManifestDigest, Size: int64(len(h.ManifestBytes))}):
		return nil, fmt.Errorf("%w: the statement covers bundle manifest %s, the bundle holds %s", ErrStatement, p.Manifest.Digest, h.ManifestDigest)
	case p.Name != m.Name || p.Version != m.Version || !p.Created.Equal(m.Created):
		return nil, fmt.Errorf("%w: name, version or creation time differ from %s", ErrStatement, EntryManifest)
	case !p.Expires.After(p.Created):
		return nil, fmt.Errorf("%w: expires %s is not after created %s", ErrStatement, p.Expires.Format(time.RFC3339), p.Created.Format(time.RFC3339))
	case p.Sequence == 0:
		return nil, fmt.Errorf("%w: sequence 0", ErrStatement)
	case p.Channel != "" && !channelRE.MatchString(p.Channel):
		return nil, fmt.Errorf("%w: channel %q", ErrStatement, clip(p.Channel))
	}
	return &st, nil
}
