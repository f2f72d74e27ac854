package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// TestECDSAVerifierAcceptsOnlyDER: the same valid signature is accepted as
// DER and refused in every other form the sigstore verifier (or a lax DER
// parser) would take.
func TestECDSAVerifierAcceptsOnlyDER(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("payload")
	sum := sha256.Sum256(msg)
	der, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	pk, err := newPublic("test", &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pk.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifySignature(bytes.NewReader(der), bytes.NewReader(msg)); err != nil {
		t.Fatalf("DER: %v", err)
	}
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	r, s := new(big.Int), new(big.Int)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1Integer(r) || !seq.ReadASN1Integer(s) {
		t.Fatal("not DER")
	}
	p1363 := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	if !ecdsa.Verify(&priv.PublicKey, sum[:], r, s) {
		t.Fatal("r, s do not verify")
	}
	// A long-form length where the short form fits (BER, not DER).
	ber := append([]byte{0x30, 0x81, der[1]}, der[2:]...)
	cases := map[string][]byte{
		"raw r||s (IEEE P1363)": p1363,
		"DER with a byte after": append(append([]byte(nil), der...), 0),
		"BER long-form length":  ber,
		"empty":                 {},
	}
	for name, sig := range cases {
		err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg))
		if !errors.Is(err, ErrSignatureEncoding) {
			t.Errorf("%s: err = %v, want ErrSignatureEncoding", name, err)
		}
	}
}
