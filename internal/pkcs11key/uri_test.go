package pkcs11key

import (
	"errors"
	"testing"

	"github.com/airlock-dev/airlock/internal/errclass"
)

func TestParseURI(t *testing.T) {
	u, err := ParseURI("pkcs11:token=release%20team;object=airlock;id=%01%02?module-path=/usr/lib/x.so&pin-source=file:///run/pin")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "release team" || u.Object != "airlock" || string(u.ID) != "\x01\x02" || u.ModulePath != "/usr/lib/x.so" || u.PINSource != "/run/pin" {
		t.Fatalf("parsed %+v", u)
	}
	u, err = ParseURI("PKCS11:slot-id=3;object=k?pin-source=pins/ci.txt")
	if err != nil || u.SlotID == nil || *u.SlotID != 3 || u.PINSource != "pins/ci.txt" {
		t.Fatalf("slot-id: %v %+v", err, u)
	}
	if u, err = ParseURI("pkcs11:serial=abc;id=%aa;type=private"); err != nil || u.Serial != "abc" {
		t.Fatalf("serial: %v %+v", err, u)
	}
}

func TestParseURIRefuses(t *testing.T) {
	for name, s := range map[string]string{
		"not a URI":           "release.key",
		"no token":            "pkcs11:object=k",
		"two token selectors": "pkcs11:token=a;serial=b;object=k",
		"no key":              "pkcs11:token=a",
		"duplicate":           "pkcs11:token=a;token=b;object=k",
		"pin-value":           "pkcs11:token=a;object=k?pin-value=1234",
		"module-name":         "pkcs11:token=a;object=k?module-name=softhsm2",
		"unknown path attr":   "pkcs11:token=a;object=k;colour=red",
		"unknown query attr":  "pkcs11:token=a;object=k?x=1",
		"ignored selector":    "pkcs11:token=a;object=k;manufacturer=SoftHSM",
		"public key type":     "pkcs11:token=a;object=k;type=public",
		"bad escape":          "pkcs11:token=a%zz;object=k",
		"bad slot":            "pkcs11:slot-id=-1;object=k",
		"no equals":           "pkcs11:token;object=k",
		"remote pin file":     "pkcs11:token=a;object=k?pin-source=file://host/pin",
		"fragment":            "pkcs11:token=a;object=k#x",
		"empty module":        "pkcs11:token=a;object=k?module-path=",
	} {
		_, err := ParseURI(s)
		if !errors.Is(err, ErrBadURI) {
			t.Errorf("%s: %q: err %v, want ErrBadURI", name, s, err)
			continue
		}
		if errclass.Of(err) != errclass.Usage {
			t.Errorf("%s: class %v, want usage", name, errclass.Of(err))
		}
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=a;object=k?pin-source=/p")
	f.Add("pkcs11:serial=1;id=%01")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err == nil && (u.Object == "" && len(u.ID) == 0) {
			t.Fatalf("%q parsed without a key selector", s)
		}
	})
}
