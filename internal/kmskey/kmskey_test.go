package kmskey

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestProvidersLinked: the four providers cosign accepts are linked, so
// their URIs reach the provider instead of being refused.
func TestProvidersLinked(t *testing.T) {
	for _, s := range []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"} {
		if !slices.Contains(Schemes(), s) {
			t.Errorf("provider %s is not linked (have %v)", s, Schemes())
		}
		if !IsURI(s + "x") {
			t.Errorf("IsURI(%sx) = false", s)
		}
	}
	if IsURI("release.key") || IsURI("pkcs11:token=a") {
		t.Error("a key file or a pkcs11 URI taken for a KMS URI")
	}
}

// TestOpenRefusesOtherSchemes: only linked providers' URIs are opened.
func TestOpenRefusesOtherSchemes(t *testing.T) {
	if _, err := Open(context.Background(), "nokms://key"); !errors.Is(err, ErrKMS) {
		t.Fatalf("Open(nokms://) = %v, want ErrKMS", err)
	}
}
