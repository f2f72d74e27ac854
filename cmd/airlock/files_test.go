package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInspectAndVerifyListContentDigests: inspect (text and --json) and
// verify --json list every model file and file with its path, size and
// the sha256 that sha256sum prints for the file on disk, next to the
// artifact's manifest digest; every --json output carries schemaVersion
// and the airlock version.
func TestInspectAndVerifyListContentDigests(t *testing.T) {
	t.Parallel()
	rel := sampleRelease(t)
	_, b, pol, _ := verifiedRelease(t)
	// The sha256 of each file of the release, as sha256sum computes it.
	want := map[string]string{} // path relative to its artifact -> hex
	sizes := map[string]int64{}
	// (SBOM documents name the test registry's address, which differs
	// between two sample releases: only the model and the files compare.)
	// The model, the top-level config files and the conf.d directory
	// artifact (whose files are listed relative to it, *.bak excluded as
	// the sample airlock.yaml says).
	for _, dir := range []string{"models/tiny-classifier", "config", "config/conf.d"} {
		root := filepath.Join(rel, dir)
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if dir == "config" && p != root {
					return filepath.SkipDir // a directory artifact of its own
				}
				return nil
			}
			if strings.HasSuffix(p, ".bak") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			r, _ := filepath.Rel(root, p)
			want[filepath.ToSlash(r)] = hex.EncodeToString(sum[:])
			sizes[filepath.ToSlash(r)] = int64(len(data))
			return nil
		})
	}
	if len(want) < 5 {
		t.Fatalf("sample release has %d files", len(want))
	}

	type files struct {
		SchemaVersion int    `json:"schemaVersion"`
		Airlock       string `json:"airlock"`
		Files         []struct {
			Kind, Name, ManifestDigest, Path, SHA256, Digest string
			Size                                             int64
		} `json:"files"`
	}
	for _, args := range [][]string{{"inspect", b, "--json"}, {"verify", b, "--policy", pol, "--json"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var got files
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatal(err)
		}
		head := strings.Join(strings.SplitN(stdout, "\n", 4)[1:3], " ")
		if got.SchemaVersion != 1 || got.Airlock != version() || !strings.Contains(head, `"schemaVersion": 1`) || !strings.Contains(head, `"airlock": `) {
			t.Errorf("%s --json: schemaVersion %d, airlock %q", args[0], got.SchemaVersion, got.Airlock)
		}
		if len(got.Files) != len(want)+2 {
			t.Errorf("%s --json lists %d files, the release has %d and 2 SBOMs", args[0], len(got.Files), len(want))
		}
		for _, f := range got.Files {
			if f.Kind == "sbom" {
				continue
			}
			if want[f.Path] != f.SHA256 || "sha256:"+f.SHA256 != f.Digest || sizes[f.Path] != f.Size || !strings.HasPrefix(f.ManifestDigest, "sha256:") {
				t.Errorf("%s --json: %+v; sha256sum says %s (%d bytes)", args[0], f, want[f.Path], sizes[f.Path])
			}
		}
	}
	code, stdout, _ := runCLI(t, nil, "inspect", b)
	if code != exitOK {
		t.Fatal("inspect")
	}
	for p, sum := range want {
		if !strings.Contains(stdout, sum+"  "+p+"  (") {
			t.Errorf("inspect text lacks %q", sum+"  "+p)
		}
	}
	// Other --json outputs are stamped too.
	code, stdout, _ = runCLI(t, nil, "version", "--json")
	if code != exitOK || !strings.Contains(stdout, `"schemaVersion": 1`) || !strings.Contains(stdout, `"airlock": `) {
		t.Errorf("version --json: %s", stdout)
	}
}
