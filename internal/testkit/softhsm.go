package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SoftHSMHint says how to get SoftHSM2.
const SoftHSMHint = "sudo make tools (installs the Debian package softhsm2)"

// SoftHSMModule is where Debian's softhsm2 package puts the PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// SoftHSM is a SoftHSM2 token initialised in a private directory.
type SoftHSM struct {
	Module string // the PKCS#11 library to load
	Dir    string // holds softhsm2.conf and the token files
	Token  string // the token label
	PIN    string // the user PIN
	SOPIN  string // the security officer PIN
}

// NewSoftHSM initialises one token labelled label in a temporary directory
// and points SOFTHSM2_CONF at it (t.Setenv: the test cannot be parallel;
// the module reads the variable when it is loaded). A missing softhsm2
// skips the test, or fails it when CI=true.
func NewSoftHSM(t *testing.T, label string) *SoftHSM {
	t.Helper()
	util := RequireTool(t, "softhsm2-util", SoftHSMHint)
	if _, err := os.Stat(SoftHSMModule); err != nil {
		msg := "softhsm2-util is installed but " + SoftHSMModule + " is not; install it with: " + SoftHSMHint
		if os.Getenv("CI") == "true" {
			t.Fatal("testkit: " + msg)
		}
		t.Skip("testkit: " + msg)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	h := &SoftHSM{Module: SoftHSMModule, Dir: dir, Token: label, PIN: "123456", SOPIN: "65432100"}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", h.PIN, "--so-pin", h.SOPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return h
}
