package keys

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// ErrSignatureEncoding reports a signature in another encoding than the one
// airlock accepts for its key type: for ECDSA, ASN.1 DER (the encoding
// cosign, sigstore and Go's crypto/ecdsa produce). The sigstore verifier
// also accepts raw r||s (IEEE P1363); airlock does not, so that one
// signature has exactly one accepted byte form.
var ErrSignatureEncoding = errors.New("signature encoding not accepted")

// MaxSignatureBytes bounds a signature before it is parsed (an ECDSA P-521
// DER signature is at most 139 bytes, RSA-4096 512, Ed25519 64).
const MaxSignatureBytes = 2048

// derECDSAVerifier accepts only DER-encoded ECDSA signatures.
type derECDSAVerifier struct{ signature.Verifier }

func (v derECDSAVerifier) VerifySignature(sig, message io.Reader, opts ...signature.VerifyOption) error {
	b, err := io.ReadAll(io.LimitReader(sig, MaxSignatureBytes+1))
	if err != nil {
		return err
	}
	if err := CheckECDSADER(b); err != nil {
		return err
	}
	return v.Verifier.VerifySignature(bytes.NewReader(b), message, opts...)
}

// CheckECDSADER reports whether sig is exactly one DER SEQUENCE of two
// non-negative, minimally encoded INTEGERs (r, s) with nothing after it.
func CheckECDSADER(sig []byte) error {
	if len(sig) > MaxSignatureBytes {
		return fmt.Errorf("%w: %d bytes is too long for an ECDSA signature", ErrSignatureEncoding, len(sig))
	}
	in := cryptobyte.String(sig)
	var seq cryptobyte.String
	var r, s []byte
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() ||
		len(r) == 0 || len(s) == 0 {
		return fmt.Errorf("%w: an ECDSA signature must be ASN.1 DER, SEQUENCE { r INTEGER, s INTEGER } (what cosign and sigstore produce); raw r||s (IEEE P1363) and other forms are refused", ErrSignatureEncoding)
	}
	return nil
}
