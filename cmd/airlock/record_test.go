package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/attest"
	"github.com/airlock-dev/airlock/audit"
	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/testkit"
	"github.com/airlock-dev/airlock/mirror"
)

// TestMirrorAttestAndAuditLog: `mirror --attest -o --audit-log` writes the
// record, attaches it to every mirrored image as a referrer in a real
// registry (distribution, through the referrers tag schema), and appends
// one audit line per run, a rejected run included; `audit verify` checks
// the chain and finds an edited line.
func TestMirrorAttestAndAuditLog(t *testing.T) {
	t.Parallel()
	reg := testkit.Start(t)
	dir, b, pol, env := verifiedRelease(t)
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "site")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	vsa, log := filepath.Join(dir, "vsa.json"), filepath.Join(dir, "mirror-audit.log")
	dest := reg.Host + "/site"
	code, res, stderr := mirrorCLI(t, env, b, dest, pol, "--attest", filepath.Join(dir, "site.key"), "-o", vsa, "--audit-log", log)
	if code != exitOK {
		t.Fatalf("mirror --attest: exit %d: %s", code, stderr)
	}
	record, err := os.ReadFile(vsa)
	if err != nil {
		t.Fatal(err)
	}
	if st := readRecord(t, vsa); st.Predicate.VerificationResult != attest.Passed || st.Predicate.Verifier.Version["operation"] != "mirror" {
		t.Fatalf("record: %+v", st.Predicate)
	}
	var images, records []mirror.Mapping
	for _, m := range res.Mappings {
		switch m.Kind {
		case bundle.KindImage:
			images = append(images, m)
		case "record":
			records = append(records, m)
		}
	}
	if len(images) != 3 || len(records) != len(images) {
		t.Fatalf("%d images, %d records attached: %+v", len(images), len(records), res.Mappings)
	}
	for _, img := range images {
		ref, err := name.NewDigest(img.Target, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		repo := ref.Context()
		idx, err := remote.Referrers(repo.Digest(img.Digest))
		if err != nil {
			t.Fatalf("referrers of %s: %v", img.Target, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range im.Manifests {
			if d.ArtifactType != attest.MediaType {
				continue
			}
			found = true
			m, err := remote.Image(repo.Digest(d.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			layers, err := m.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("record referrer of %s: %d layers, %v", img.Target, len(layers), err)
			}
			rc, err := layers[0].Compressed()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, record) {
				t.Errorf("the record attached to %s differs from %s", img.Target, vsa)
			}
		}
		if !found {
			t.Errorf("no verification record among the referrers of %s: %+v", img.Target, im.Manifests)
		}
	}

	// A second run, then a rejected one (a policy needing three signers).
	if code, _, stderr := mirrorCLI(t, env, b, dest, pol, "--audit-log", log); code != exitOK {
		t.Fatalf("second mirror: exit %d: %s", code, stderr)
	}
	strict := filepath.Join(dir, "strict.yaml")
	polText, _ := os.ReadFile(pol)
	os.WriteFile(strict, bytes.Replace(polText, []byte("threshold: 2"), []byte("threshold: 3"), 1), 0o644)
	if code, _, _ := mirrorCLI(t, env, b, dest, strict, "--audit-log", log); code != exitRejected {
		t.Fatalf("strict mirror: exit %d", code)
	}

	code, stdout, stderr := runCLI(t, nil, "audit", "verify", log, "--json")
	if code != exitOK {
		t.Fatalf("audit verify: exit %d: %s%s", code, stdout, stderr)
	}
	var rep struct {
		audit.Report
		Verified bool   `json:"verified"`
		Airlock  string `json:"airlock"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	results := []string{}
	for _, e := range rep.Entries {
		results = append(results, e.Result)
	}
	if !rep.Verified || rep.Airlock != version() || strings.Join(results, ",") != "accepted,accepted,rejected" {
		t.Fatalf("audit: verified %v, results %v", rep.Verified, results)
	}
	first := rep.Entries[0]
	if first.Operation != audit.OpMirror || first.Record != itgDigest(record) || first.Bundle == nil || first.Bundle.Root == "" ||
		first.Policy == nil || len(first.Signers) != 2 || first.Target != dest {
		t.Errorf("first entry: %+v", first)
	}
	if rep.Entries[2].Reason == "" || rep.Entries[2].Record != "" {
		t.Errorf("rejected entry: %+v", rep.Entries[2])
	}
	code, stdout, _ = runCLI(t, nil, "audit", "show", log)
	if code != exitOK || !strings.Contains(stdout, "OPERATION") || strings.Count(stdout, " mirror ") != 3 || !strings.Contains(stdout, "hash chain intact") {
		t.Fatalf("audit show: exit %d\n%s", code, stdout)
	}

	// Edit the first line: audit verify fails (exit 3) at line 2.
	data, _ := os.ReadFile(log)
	os.WriteFile(log, bytes.Replace(data, []byte(`"result":"accepted"`), []byte(`"result":"rejected"`), 1), 0o644)
	code, stdout, _ = runCLI(t, nil, "audit", "verify", log)
	if code != exitRejected || !strings.Contains(stdout, "line 2") || !strings.Contains(stdout, "BROKEN") {
		t.Fatalf("edited log: exit %d\n%s", code, stdout)
	}
}

// TestInstallAttestAndAudit: `install --attest -o` writes a PASSED record
// whose digest the root's audit log names; `audit show --root` lists it; a
// refused replay writes a FAILED record and a refused audit line naming it.
func TestInstallAttestAndAudit(t *testing.T) {
	t.Parallel()
	dir, b, pol, env := verifiedRelease(t)
	if code, _, stderr := runCLI(t, env, "key", "generate", "--output", filepath.Join(dir, "site")); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	root := filepath.Join(dir, "root")
	vsa := filepath.Join(dir, "vsa.json")
	code, stdout, stderr := runCLI(t, env, "install", b, "--root", root, "--policy", pol, "--attest", filepath.Join(dir, "site.key"), "-o", vsa, "--json")
	if code != exitOK {
		t.Fatalf("install --attest: exit %d: %s", code, stderr)
	}
	var out struct {
		Record    string `json:"record"`
		AuditHead string `json:"auditHead"`
	}
	json.Unmarshal([]byte(stdout), &out)
	record, _ := os.ReadFile(vsa)
	if out.Record != itgDigest(record) || out.AuditHead == "" {
		t.Fatalf("install result: record %s (file %s), audit head %q", out.Record, itgDigest(record), out.AuditHead)
	}
	code, stdout, _ = runCLI(t, nil, "audit", "verify", "--root", root, "--head", out.AuditHead)
	if code != exitOK || !strings.Contains(stdout, "install  accepted") {
		t.Fatalf("audit verify --root: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, nil, "audit", "show", "--root", root, "--json")
	var rep audit.Report
	if code != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || len(rep.Entries) != 1 || rep.Entries[0].Record != out.Record {
		t.Fatalf("audit show --root --json: exit %d\n%s", code, stdout)
	}

	// An older bundle of the same name: refused, FAILED record, refused line.
	older := filepath.Join(dir, "older.airlock")
	rel := sampleRelease(t)
	spec, _ := os.ReadFile(filepath.Join(rel, "airlock.yaml"))
	os.WriteFile(filepath.Join(rel, "airlock.yaml"), bytes.Replace(spec, []byte("version: 1.0.0"), []byte("version: 0.9.0"), 1), 0o644)
	if code, _, stderr := runCLI(t, env, "pack", "-q", "-f", filepath.Join(rel, "airlock.yaml"), "-o", older, "--key", filepath.Join(dir, "release.key"), "--sequence", "1"); code != 0 {
		t.Fatalf("pack older: %s", stderr)
	}
	runCLI(t, env, "sign", older, "--key", filepath.Join(dir, "security.key"))
	code, _, stderr = runCLI(t, env, "install", older, "--root", root, "--policy", pol, "--attest", filepath.Join(dir, "site.key"), "-o", vsa)
	if code != exitRejected || !strings.Contains(stderr, "FAILED") {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	if st := readRecord(t, vsa); st.Predicate.VerificationResult != attest.Failed {
		t.Fatalf("replay record: %+v", st.Predicate)
	}
	code, stdout, _ = runCLI(t, nil, "audit", "show", "--root", root, "--json")
	rep = audit.Report{}
	if code != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || len(rep.Entries) != 2 {
		t.Fatalf("after the replay: exit %d\n%s", code, stdout)
	}
	failed, _ := os.ReadFile(vsa)
	if e := rep.Entries[1]; e.Result != audit.ResultRefused || e.Class != audit.ClassRejected || e.Record != itgDigest(failed) || e.Bundle == nil || e.Bundle.Version != "0.9.0" {
		t.Fatalf("refused line: %+v", e)
	}
}
