package pack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/safepath"
)

// dirFile is one file found under a directory source.
type dirFile struct {
	rel  string // slash-separated, relative to the source directory
	real string // the file to read (a followed link's target)
	mode string
}

// globMatch reports whether a files[].include/exclude pattern matches the
// slash-separated relative path rel: a pattern without "/" matches the
// last element at any depth ("*.yaml", ".git"); a pattern with "/" matches
// the whole path (path.Match: "*" does not cross "/").
func globMatch(pattern, rel string) bool {
	if !strings.Contains(pattern, "/") {
		ok, _ := path.Match(pattern, path.Base(rel))
		return ok
	}
	ok, _ := path.Match(pattern, rel)
	return ok
}

func matchAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if globMatch(p, rel) {
			return true
		}
	}
	return false
}

// walkDir lists the files of a directory source in byte order of their
// relative paths: regular files and directories only, unless
// followSymlinks lets a link to a regular file inside the source through.
// Excluded directories are not entered.
func walkDir(artifact, src string, f FileSpec) ([]dirFile, error) {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	var out []dirFile
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == src {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if matchAny(f.Exclude, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		real := p
		t := d.Type()
		if t&fs.ModeSymlink != 0 {
			if !f.FollowSymlinks {
				return fmt.Errorf("%s is a symbolic link; a directory source may hold only regular files and directories (set followSymlinks: true to carry links that stay inside the source, or exclude it)", p)
			}
			if real, err = insideLink(root, p); err != nil {
				return err
			}
		} else if !t.IsRegular() {
			return fmt.Errorf("%s is a %s; a directory source may hold only regular files and directories (remove or exclude it)", p, safepath.Kind(t))
		}
		if len(f.Include) > 0 && !matchAny(f.Include, rel) {
			return nil
		}
		if err := safepath.Check(rel); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		mode, err := fileMode(f, real)
		if err != nil {
			return err
		}
		out = append(out, dirFile{rel: rel, real: real, mode: mode})
		if len(out) > bundle.MaxFanOut {
			return fmt.Errorf("more than %d files; split the directory into several files: entries", bundle.MaxFanOut)
		}
		return nil
	})
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	if len(out) == 0 {
		return nil, &SourceError{Artifact: artifact, Err: fmt.Errorf("directory %s holds no files (after include/exclude)", src)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// insideLink resolves a symbolic link under a directory source and
// returns its target when that is a regular file inside root.
func insideLink(root, p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("%s: symbolic link does not resolve: %w", p, err)
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s is a symbolic link to %s, outside the source directory; followSymlinks carries only links that stay inside it", p, real)
	}
	st, err := os.Lstat(real)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is a symbolic link to a %s; only links to regular files are followed", p, safepath.Kind(st.Mode()))
	}
	return real, nil
}

// packDir packs a directory source as a dir artifact: every file hashed
// (with jobs workers), each a layer carrying its path and mode.
func packDir(ctx context.Context, f FileSpec, src string, jobs int, prog bundle.Progress) (*packArtifact, error) {
	artifact := "directory " + f.Source
	files, err := walkDir(artifact, src, f)
	if err != nil {
		return nil, err
	}
	blobs := make([]localBlob, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, df := range files {
		g.Go(func() error {
			d, stamp, err := hashFile(gctx, artifact, df.real, prog)
			if err != nil {
				return err
			}
			blobs[i] = localBlob{LocalLayer: bundle.LocalLayer{Descriptor: bundle.Descriptor{MediaType: bundle.MediaTypeOctetStream, Digest: d.Digest, Size: d.Size}, Path: df.rel, Mode: df.mode}, path: df.real, stamp: stamp}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	layers := make([]bundle.LocalLayer, len(blobs))
	for i, b := range blobs {
		layers[i] = b.LocalLayer
	}
	mode := ""
	if f.Mode != "" {
		mode = "0" + strings.TrimPrefix(f.Mode, "0")
	}
	it, err := bundle.NewDirItem(f.Source, f.target(), mode, layers)
	if err != nil {
		return nil, &SourceError{Artifact: artifact, Err: err}
	}
	return localItem(it, blobs), nil
}

// errDirOptions: include, exclude and followSymlinks apply to directories.
var errDirOptions = errors.New("include, exclude and followSymlinks apply only to a directory source; remove them or name a directory")
