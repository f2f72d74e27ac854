package pack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/ctxio"
	"github.com/airlock-dev/airlock/internal/safepath"
	"github.com/airlock-dev/airlock/internal/sbom"
)

// localBlob is a file on the packing machine, hashed once before writing.
type localBlob struct {
	bundle.LocalLayer
	path  string
	stamp fileStamp // identity of the file when it was hashed
}

// fileStamp identifies a file's content without reading it: if device,
// inode, size, modification and change times are all unchanged, the bytes
// hashed earlier are the bytes being copied. (The change time cannot be set
// back by an ordinary process, so a rewrite that restores the mtime is still
// noticed.)
type fileStamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

func stampOf(f *os.File) (fileStamp, error) {
	st, err := f.Stat()
	if err != nil {
		return fileStamp{}, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{}, fmt.Errorf("%s: no file identity on this platform", f.Name())
	}
	return fileStamp{
		dev: uint64(sys.Dev), ino: sys.Ino, size: st.Size(),
		mtime: sys.Mtim.Nano(), ctime: sys.Ctim.Nano(),
	}, nil
}

// hashFile returns the digest and size of a regular file, refusing anything
// else, and the file's stamp.
func hashFile(ctx context.Context, artifact, p string, prog bundle.Progress) (bundle.Descriptor, fileStamp, error) {
	f, err := openRegular(artifact, p)
	if err != nil {
		return bundle.Descriptor{}, fileStamp{}, err
	}
	defer f.Close()
	before, err := stampOf(f)
	if err != nil {
		return bundle.Descriptor{}, fileStamp{}, &SourceError{Artifact: artifact, Err: err}
	}
	h := sha256.New()
	if prog != nil {
		id := "hash " + p
		prog.Start(id, "hash "+filepath.Base(p), before.size)
		defer prog.Done(id)
		n, err := io.Copy(h, bundle.WithProgress(ctxio.Reader(ctx, f), prog, id))
		return finishHash(artifact, p, f, h.Sum(nil), n, err, before)
	}
	n, err := io.Copy(h, ctxio.Reader(ctx, f))
	return finishHash(artifact, p, f, h.Sum(nil), n, err, before)
}

func finishHash(artifact, p string, f *os.File, sum []byte, n int64, err error, before fileStamp) (bundle.Descriptor, fileStamp, error) {
	if err != nil {
		return bundle.Descriptor{}, fileStamp{}, &SourceError{Artifact: artifact, Err: fmt.Errorf("read %s: %w", p, err)}
	}
	after, err := stampOf(f)
	if err != nil || after != before || n != after.size {
		return bundle.Descriptor{}, fileStamp{}, &SourceError{Artifact: artifact, Err: fmt.Errorf("%s changed while it was read; pack again when it is stable", p)}
	}
	return bundle.Descriptor{Digest: "sha256:" + hex.EncodeToString(sum), Size: n}, after, nil
}

// openRegular opens p without following a final symlink and checks it is a regular file.
func openRegular(artifact, p string) (*os.File, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("%w (check the source path in airlock.yaml)", err)}
	}
	if !st.Mode().IsRegular() {
		return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("%s is a %s, not a regular file; replace it with the file itself", p, safepath.Kind(st.Mode()))}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	return f, nil
}

// modelFiles lists the regular files of a model source (a file or a
// directory), sorted by their slash-separated relative path.
func modelFiles(artifact, src string) ([]localBlob, error) {
	st, err := os.Lstat(src)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("%w (check models[].source in airlock.yaml)", err)}
	}
	if st.Mode().IsRegular() {
		return []localBlob{{path: src, LocalLayer: bundle.LocalLayer{Path: filepath.Base(src)}}}, nil
	}
	if !st.IsDir() {
		return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("%s is a %s; a model source must be a file or a directory", src, safepath.Kind(st.Mode()))}
	}
	var out []localBlob
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is a %s; models may contain only regular files and directories (remove it, or replace a link with the file it points to)", p, safepath.Kind(d.Type()))
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out = append(out, localBlob{path: p, LocalLayer: bundle.LocalLayer{Path: filepath.ToSlash(rel)}})
		if len(out) > bundle.MaxFanOut {
			return fmt.Errorf("more than %d files; pack large models as fewer, larger files", bundle.MaxFanOut)
		}
		return nil
	})
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	if len(out) == 0 {
		return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("directory %s holds no files", src)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// fileMode returns the mode to record for a file artifact.
func fileMode(spec FileSpec, p string) (string, error) {
	if spec.Mode != "" {
		m := strings.TrimPrefix(spec.Mode, "0")
		return "0" + m, nil
	}
	st, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o111 != 0 {
		return "0755", nil
	}
	return "0644", nil
}

// summarizeSBOM detects the format of an SBOM file and summarizes it.
func summarizeSBOM(artifact, p string) (*bundle.SBOMSummary, string, error) {
	f, err := openRegular(artifact, p)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	s, err := sbom.Summarize(p, f)
	if err != nil {
		return nil, "", &SourceError{Artifact: artifact, Err: err}
	}
	return &bundle.SBOMSummary{Format: string(s.Format), SpecVersion: s.SpecVersion, Name: s.Name, Packages: s.Packages}, s.Format.MediaType(), nil
}
