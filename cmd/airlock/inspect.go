package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/policy"
)

func inspectCommand() command {
	return command{
		name:    "inspect",
		summary: "Show what a bundle carries, reading only its metadata head (fast on any size).",
		usage:   "BUNDLE [--json] [--files] [--policy policy.yaml]",
		examples: `  airlock inspect payments-1.4.2.airlock
  airlock inspect payments-1.4.2.airlock --json | jq '.artifacts[] | select(.kind=="image") | .digest'
  airlock inspect payments-1.4.2.airlock --files   # every file of every directory
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			asJSON := fs.Bool("json", false, "print the documented JSON report")
			policyPath := fs.StringP("policy", "p", "", "name signers with the key names of this trust policy")
			insecurePerms := fs.Bool("insecure-permissions", false, "use a policy or key file even when group or others may write it (refused by default, as OpenSSH refuses such keys)")
			files := fs.Bool("files", false, "list every file of every directory artifact (path, mode, size, digest)")
			return func(_ context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("inspect takes exactly one bundle path")
				}
				return runInspect(e, args[0], *asJSON, *files, *policyPath, *insecurePerms)
			}
		},
	}
}

func runInspect(e *env, path string, asJSON, files bool, policyPath string, insecurePerms bool) error {
	var pol *policy.Policy
	if policyPath != "" {
		var err error
		if pol, err = policy.LoadWith(policyPath, policy.LoadOptions{InsecurePermissions: insecurePerms}); err != nil {
			return err
		}
	}
	f, size, err := openBundle(e, path)
	if err != nil {
		return err
	}
	defer f.Close()
	head, err := bundle.ReadHead(f)
	if err != nil {
		return withJournalHint(path, fmt.Errorf("%s: %w", path, err))
	}
	ins := bundle.Inspect(head)
	if files {
		ins.Directories = bundle.InspectDirs(head, true)
	}
	if pol != nil {
		for i := range ins.Signatures {
			ins.Signatures[i].Name = pol.KeyName(ins.Signatures[i].KeyID)
		}
	}
	if asJSON {
		return writeJSON(e.stdout, ins)
	}
	renderInspection(e.stdout, ins, size)
	return nil
}

func renderInspection(w io.Writer, ins *bundle.Inspection, fileSize int64) {
	fmt.Fprintf(w, "Bundle:     %s %s\n", ins.Name, ins.Version)
	fmt.Fprintf(w, "Format:     %s v%d\n", ins.Format.Format, ins.Format.Version)
	fmt.Fprintf(w, "Created:    %s\n", ins.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "Root:       %s (index.json)\n", ins.Root.Digest)
	fmt.Fprintf(w, "Manifest:   %s (airlock/bundle.json)\n", ins.ManifestDigest)
	st := ins.Statement
	fmt.Fprintf(w, "Sequence:   %d\n", st.Sequence)
	fmt.Fprintf(w, "Expires:    %s\n", st.Expires.Format(time.RFC3339))
	if st.Channel != "" {
		fmt.Fprintf(w, "Channel:    %s\n", st.Channel)
	}
	if len(ins.Signatures) == 0 {
		fmt.Fprintf(w, "Signatures: none (unsigned bundle; add one with airlock sign)\n")
	}
	for _, s := range ins.Signatures {
		name := s.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(w, "Signature:  %s key %s (not checked here; run airlock verify)\n", name, s.KeyID)
	}
	fmt.Fprintf(w, "\nArtifacts:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  KIND\tNAME\tDIGEST\tSIZE\tDETAILS\n")
	for i, a := range ins.Artifacts {
		name, details := a.Ref, ""
		switch a.Kind {
		case bundle.KindImage:
			details = "platforms: " + joinOr(a.Platforms, "unspecified")
			if a.Filtered {
				details += "; filtered from " + a.Resolved
			} else if a.Resolved != "" {
				details += "; from " + a.Resolved
			}
		case bundle.KindModel:
			name, details = a.Name, "-> "+a.Target
		case bundle.KindFile:
			name, details = a.Source, fmt.Sprintf("-> %s (mode %s)", a.Target, a.Mode)
		case bundle.KindDir:
			name, details = a.Source, "-> "+a.Target+"/"
			for _, d := range ins.Directories {
				if d.Artifact == i {
					details += fmt.Sprintf(" (%s, %s)", plural(d.Files, "file"), humanBytes(d.Bytes))
				}
			}
			if a.Mode != "" {
				details += " mode " + a.Mode
			}
		case bundle.KindChart:
			name, details = a.Name+" "+a.Version, "-> charts/"+a.Name+":"+bundle.ChartTag(a.Version)
			if a.Resolved != "" {
				details += "; from " + a.Resolved
			} else {
				details += "; from " + a.Source
			}
		case bundle.KindAttachment:
			name = a.Tag
			if name == "" {
				name = "referrer " + a.ArtifactType
			}
			details = fmt.Sprintf("upstream %s of %s (%s)", attachmentWhat(a), a.Subject, shortDigest(a.SubjectDigest))
		case bundle.KindSBOM:
			name = a.Source
			if a.SBOM != nil {
				details = fmt.Sprintf("%s %s, %d packages", a.SBOM.Format, a.SBOM.SpecVersion, a.SBOM.Packages)
			}
			if a.Subject != "" {
				details += "; describes " + a.Subject
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", a.Kind, name, shortDigest(a.Digest), humanBytes(a.Bytes), details)
	}
	tw.Flush()
	renderContentFiles(w, ins.Files)
	var sboms []string
	for _, a := range ins.Artifacts {
		if a.Kind == bundle.KindSBOM && a.SBOM != nil {
			sboms = append(sboms, fmt.Sprintf("%s (%s, %d packages)", a.Source, a.SBOM.Format, a.SBOM.Packages))
		}
	}
	if len(sboms) > 0 {
		fmt.Fprintf(w, "\nSBOMs:      %s\n", strings.Join(sboms, "; "))
	}
	for _, d := range ins.Directories {
		if len(d.List) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nDirectory %s -> %s/ (%s, %s):\n", d.Source, d.Target, plural(d.Files, "file"), humanBytes(d.Bytes))
		ftw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, f := range d.List {
			fmt.Fprintf(ftw, "  %s\t%s\t%s\t%s\n", f.Mode, humanBytes(f.Size), shortDigest(f.Digest), f.Path)
		}
		ftw.Flush()
	}
	t := ins.Totals
	fmt.Fprintf(w, "\nTotals:     %d artifacts, %d unique blobs, %s (body: %d blobs, %s)\n", t.Artifacts, t.Blobs, humanBytes(t.Bytes), t.BodyBlobs, humanBytes(t.BodyBytes))
	fmt.Fprintf(w, "Head:       %d entries, %s compressed%s\n", ins.Head.Entries, humanBytes(ins.Head.CompressedBytes), fileSizeText(fileSize))
	if bd := ins.Body; bd != nil {
		fmt.Fprintf(w, "Body:       format %d, %s in %s (%s frames), %s compressed\n", ins.Format.Version, humanBytes(bd.UncompressedSize), plural(bd.Frames, "frame"), humanBytes(bd.FrameSize), humanBytes(bd.CompressedSize))
		for i, v := range bd.Volumes {
			extra := ""
			if i == 0 {
				extra = " after the head"
			}
			fmt.Fprintf(w, "Volume %-3d  %s of body%s, %s\n", v.Number, humanBytes(v.Size), extra, v.SHA256)
		}
	}
}

// attachmentWhat names what an attachment is, from its tag or artifact type.
func attachmentWhat(a bundle.Artifact) string {
	switch {
	case strings.HasSuffix(a.Tag, ".sig"), strings.Contains(a.ArtifactType, "sig"):
		return "signature"
	case strings.HasSuffix(a.Tag, ".att"), strings.Contains(a.ArtifactType, "in-toto"), strings.Contains(a.ArtifactType, "attestation"):
		return "attestation"
	case strings.HasSuffix(a.Tag, ".sbom"), strings.Contains(a.ArtifactType, "spdx"), strings.Contains(a.ArtifactType, "cyclonedx"):
		return "SBOM"
	}
	return "referrer"
}

// withJournalHint adds what to do when an interrupted `airlock sign` left a journal.

// fileSizeText is "; bundle file SIZE", or nothing for a pipe.
func fileSizeText(n int64) string {
	if n < 0 {
		return ""
	}
	return "; bundle file " + humanBytes(n)
}

// renderContentFiles lists the files of models, files and SBOMs with the
// sha256 a vendor publishes, in the layout sha256sum prints, so a reviewer
// can compare them line by line.
func renderContentFiles(w io.Writer, files []bundle.ContentFile) {
	if len(files) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFiles (sha256 as sha256sum prints it; artifact manifest digest after the name):\n")
	last := -1
	for _, f := range files {
		if f.Artifact != last {
			fmt.Fprintf(w, "  %s  %s\n", f.Name, f.ManifestDigest)
			last = f.Artifact
		}
		fmt.Fprintf(w, "    %s  %s  (%s)\n", f.SHA256, f.Path, humanBytes(f.Size))
	}
}
