package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// ErrVolume reports a volume set that is incomplete or damaged: a missing,
// duplicated, truncated, swapped or corrupt volume. It is a rejection of the
// input, like ErrMalformed.
var ErrVolume = fmt.Errorf("%w: volume set", ErrMalformed)

// VolumeError names the volume a problem was found in, by number and file.
type VolumeError struct {
	Number int
	Of     int
	Path   string
	Err    error
}

func (e *VolumeError) Error() string {
	where := fmt.Sprintf("volume %d of %d", e.Number, e.Of)
	if e.Of == 0 { // not known: the head is not read
		where = fmt.Sprintf("volume %d", e.Number)
	}
	if e.Path != "" {
		where += " (" + e.Path + ")"
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *VolumeError) Unwrap() error { return e.Err }

// Set is a bundle on disk: one file, or a volume set. Open it with OpenSet.
type Set struct {
	// Head is read from the file or from volume 1; whether it is trusted
	// is for package verify to decide.
	Head *Head
	// Paths are the files in order: one for a single file, one per volume.
	Paths []string
	// Volumes is true for a volume set.
	Volumes bool
	// BodyStart is where the body starts in the first file (head and padding before it).
	BodyStart int64
}

var volumeName = regexp.MustCompile(`^(.+)\.([0-9]{3,})$`)

// IsVolumeSet reports whether path names a volume set: a directory, or a
// file whose name ends in a volume number (.001, .002, ...) and that is
// not a whole bundle itself (a single file may be named out.123).
func IsVolumeSet(path string) bool {
	st, err := os.Stat(path)
	if err == nil && st.IsDir() {
		return true
	}
	if !volumeName.MatchString(filepath.Base(path)) {
		return false
	}
	return err != nil || !wholeBundle(path, st)
}

// wholeBundle reports whether the regular file path (st) is a bundle in one
// file: its head reads and lists no volumes.
func wholeBundle(path string, st os.FileInfo) bool {
	if !st.Mode().IsRegular() {
		return false
	}
	h, err := ReadHeadFile(path)
	return err == nil && (h.Frames == nil || len(h.Frames.Volumes) == 0)
}

// notRegular refuses a volume that is not a regular file (a FIFO would
// block the reader forever, a device never ends), naming it.
func notRegular(path string, st os.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%w: %s is not a regular file (%s); a volume must be a file copied from the set", ErrVolume, path, st.Mode().Type())
}

// OpenSet finds the bundle at path: a bundle file; any volume of a set
// (NAME.001, NAME.002, ...: the others are looked for next to it); or a
// directory that holds one bundle file or one volume set, the volumes in any
// order of arrival. It reads the head and checks, before any body byte is
// read, that every volume the head lists is there once with the size the
// head gives, naming each one that is not by number.
func OpenSet(path string) (*Set, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var dir, base string
	switch {
	case st.IsDir():
		dir = path
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		bases := map[string]bool{}
		var singles []string
		for _, e := range entries {
			if e.Type()&os.ModeSymlink != 0 {
				// A volume linked from elsewhere counts as what it points to.
				if st, err := os.Stat(filepath.Join(dir, e.Name())); err != nil || !st.Mode().IsRegular() {
					continue
				}
			} else if !e.Type().IsRegular() {
				continue
			}
			if m := volumeName.FindStringSubmatch(e.Name()); m != nil {
				bases[m[1]] = true
			} else if strings.HasSuffix(e.Name(), ".airlock") {
				singles = append(singles, e.Name())
			}
		}
		switch {
		case len(bases) == 1 && len(singles) > 0:
			for b := range bases {
				base = b
			}
			return nil, fmt.Errorf("%s holds both %s and volumes of %s; give the file or the first volume of the one to read, or keep one bundle in the directory", dir, strings.Join(singles, ", "), base)
		case len(bases) == 1:
			for b := range bases {
				base = b
			}
		case len(bases) > 1:
			var names []string
			for b := range bases {
				names = append(names, b)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("%s holds volumes of %d bundles (%s); give the first volume of the one to read", dir, len(names), strings.Join(names, ", "))
		case len(singles) == 1:
			return openSingle(filepath.Join(dir, singles[0]))
		case len(singles) > 1:
			sort.Strings(singles)
			return nil, fmt.Errorf("%s holds %d bundle files (%s); give the one to read", dir, len(singles), strings.Join(singles, ", "))
		default:
			return nil, fmt.Errorf("%s holds no bundle: no NAME.airlock file and no volumes NAME.001, NAME.002, ...", dir)
		}
	default:
		m := volumeName.FindStringSubmatch(filepath.Base(path))
		if m == nil || wholeBundle(path, st) {
			return openSingle(path)
		}
		if err := notRegular(path, st); err != nil {
			return nil, err
		}
		dir, base = filepath.Dir(path), m[1]
	}
	return openVolumes(dir, base)
}

func openSingle(path string) (*Set, error) {
	h, err := ReadHeadFile(path)
	if err != nil {
		return nil, err
	}
	return &Set{Head: h, Paths: []string{path}, BodyStart: h.HeadSize + h.PaddingSize}, nil
}

func openVolumes(dir, base string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	found := map[int][]string{}
	for _, e := range entries {
		m := volumeName.FindStringSubmatch(e.Name())
		if m == nil || m[1] != base {
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: %s: not a volume number", ErrVolume, filepath.Join(dir, e.Name()))
		}
		found[n] = append(found[n], filepath.Join(dir, e.Name()))
	}
	first := found[1]
	if len(first) == 0 {
		// How many volumes the set has is in volume 1: Of stays 0.
		return nil, &VolumeError{Number: 1, Path: filepath.Join(dir, base+".001"), Err: fmt.Errorf("%w: volume 1 is missing; it holds the head, nothing can be checked without it (found: %s)", ErrVolume, foundNumbers(found))}
	}
	if st, err := os.Stat(first[0]); err != nil {
		return nil, &VolumeError{Number: 1, Path: first[0], Err: err}
	} else if err := notRegular(first[0], st); err != nil {
		return nil, err
	}
	h, err := ReadHeadFile(first[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", first[0], err)
	}
	if h.Frames == nil || len(h.Frames.Volumes) == 0 {
		return nil, fmt.Errorf("%w: %s is a whole bundle, not volume 1 of a set; give it without the volume number", ErrVolume, first[0])
	}
	vols := h.Frames.Volumes
	s := &Set{Head: h, Volumes: true, BodyStart: h.HeadSize + h.PaddingSize}
	var problems []string
	for _, v := range vols {
		paths := found[v.Number]
		switch {
		case len(paths) == 0:
			problems = append(problems, fmt.Sprintf("volume %d of %d (%s) is missing", v.Number, len(vols), filepath.Join(dir, VolumeName(base, v.Number))))
			continue
		case len(paths) > 1:
			problems = append(problems, fmt.Sprintf("volume %d is there twice (%s)", v.Number, strings.Join(paths, ", ")))
			continue
		}
		want := v.Size
		if v.Number == 1 {
			want += s.BodyStart
		}
		if st, err := os.Stat(paths[0]); err != nil {
			problems = append(problems, fmt.Sprintf("volume %d (%s): %v", v.Number, paths[0], errors.Unwrap(err)))
		} else if !st.Mode().IsRegular() {
			problems = append(problems, fmt.Sprintf("volume %d (%s) is not a regular file (%s)", v.Number, paths[0], st.Mode().Type()))
		} else if st.Size() != want {
			problems = append(problems, fmt.Sprintf("volume %d (%s) is %d bytes, the signed head says %d (truncated, or of another bundle?)", v.Number, paths[0], st.Size(), want))
		}
		s.Paths = append(s.Paths, paths[0])
	}
	var extra []int
	for n := range found {
		if n > len(vols) {
			extra = append(extra, n)
		}
	}
	sort.Ints(extra)
	for _, n := range extra {
		problems = append(problems, fmt.Sprintf("%s is not part of this bundle, which has %d volumes", strings.Join(found[n], ", "), len(vols)))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w of %s: %s", ErrVolume, filepath.Join(dir, base), strings.Join(problems, "; "))
	}
	return s, nil
}

// Open returns the bundle's bytes front to back. For a volume set it
// checks each volume's sha256 as its last byte passes and fails naming the
// volume; the reader above it sees the error before it sees the end.
func (s *Set) Open() (io.ReadCloser, error) {
	if !s.Volumes {
		return os.Open(s.Paths[0])
	}
	return &setReader{s: s}, nil
}

type setReader struct {
	s    *Set
	i    int
	f    *os.File
	h    hash.Hash
	skip int64 // bytes of the head region still to pass unhashed
	err  error
}

func (r *setReader) Read(p []byte) (int, error) {
	for r.err == nil {
		if r.f == nil {
			if r.i == len(r.s.Paths) {
				r.err = io.EOF
				break
			}
			f, err := os.Open(r.s.Paths[r.i])
			if err != nil {
				r.err = err
				break
			}
			r.f, r.h = f, sha256.New()
			if r.i == 0 {
				r.skip = r.s.BodyStart
			}
		}
		n, err := r.f.Read(p)
		if n > 0 {
			hashed := p[:n]
			if r.skip > 0 {
				k := min(int64(n), r.skip)
				r.skip -= k
				hashed = hashed[k:]
			}
			r.h.Write(hashed)
			return n, nil
		}
		if err == io.EOF {
			v := r.s.Head.Frames.Volumes[r.i]
			r.f.Close()
			r.f = nil
			if got := "sha256:" + hex.EncodeToString(r.h.Sum(nil)); got != v.SHA256 {
				r.err = r.s.mismatch(r.i, got)
				break
			}
			r.i++
			continue
		}
		if err != nil {
			r.err = err
		}
	}
	return 0, r.err
}

func (r *setReader) Close() error {
	if r.f != nil {
		r.f.Close()
	}
	return nil
}

// mismatch describes volume i whose bytes hash to got.
func (s *Set) mismatch(i int, got string) error {
	vols := s.Head.Frames.Volumes
	err := fmt.Errorf("%w: its bytes hash to %s, the signed head says %s", ErrIntegrity, got, vols[i].SHA256)
	for _, o := range vols {
		if o.SHA256 == got && o.Number != vols[i].Number {
			err = fmt.Errorf("%w: it holds the bytes of volume %d (swapped or renamed?)", ErrIntegrity, o.Number)
		}
	}
	return &VolumeError{Number: i + 1, Of: len(vols), Path: s.Paths[i], Err: err}
}

// Check hashes every volume (several at once) against the signed head and
// returns every volume that does not match, by number. A single file has
// nothing to check here.
func (s *Set) Check(ctx context.Context) error {
	if !s.Volumes {
		return nil
	}
	errs := make([]error, len(s.Paths))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, streamWorkers()))
	for i := range s.Paths {
		g.Go(func() error {
			skip := int64(0)
			if i == 0 {
				skip = s.BodyStart
			}
			got, err := hashFile(ctx, s.Paths[i], skip)
			if err != nil {
				errs[i] = &VolumeError{Number: i + 1, Of: len(s.Paths), Path: s.Paths[i], Err: err}
			} else if got != s.Head.Frames.Volumes[i].SHA256 {
				errs[i] = s.mismatch(i, got)
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

func hashFile(ctx context.Context, path string, skip int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Seek(skip, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// foundNumbers lists the volume numbers found, for a message.
func foundNumbers(found map[int][]string) string {
	var ns []int
	for n := range found {
		ns = append(ns, n)
	}
	if len(ns) == 0 {
		return "no volumes"
	}
	sort.Ints(ns)
	var b strings.Builder
	for i, n := range ns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%03d", n)
	}
	return "volumes " + b.String()
}

// VolumeCheck is the result of checking one volume on its own.
type VolumeCheck struct {
	Number int    `json:"number"`
	Of     int    `json:"of"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Misnamed is the volume number the file's name gives when it is not
	// the one its bytes are: the set will be refused until it is renamed.
	Misnamed int `json:"misnamed,omitempty"`
}

// CheckVolume checks the one file path against the volume records of head
// (read from volume 1): which volume it is, by its bytes, and that it is
// intact. A courier checks each volume as it is copied, without the
// others. path may be volume 1 itself (its head region is skipped).
func CheckVolume(ctx context.Context, head *Head, path string) (*VolumeCheck, error) {
	if head.Frames == nil || len(head.Frames.Volumes) == 0 {
		return nil, fmt.Errorf("%w: the bundle was not written as volumes", ErrVolume)
	}
	vols := head.Frames.Volumes
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := notRegular(path, st); err != nil {
		return nil, err
	}
	bodyStart := head.HeadSize + head.PaddingSize
	// Volume 1 starts with the head: if this file's head is the same
	// bundle's, its body bytes start after it.
	skip := int64(0)
	if h, err := ReadHeadFile(path); err == nil && h.ManifestDigest == head.ManifestDigest {
		skip = h.HeadSize + h.PaddingSize
	}
	// The size says which volumes it can be, before a byte is hashed.
	sized := false
	for _, v := range vols {
		sized = sized || v.Size == st.Size()-skip
	}
	got := "not hashed: no volume has its size"
	if sized {
		if got, err = hashFile(ctx, path, skip); err != nil {
			return nil, err
		}
	}
	for _, v := range vols {
		if v.SHA256 == got && v.Size == st.Size()-skip {
			c := &VolumeCheck{Number: v.Number, Of: len(vols), Path: path, Size: st.Size(), SHA256: got}
			if m := volumeName.FindStringSubmatch(filepath.Base(path)); m != nil {
				if n, _ := strconv.Atoi(m[2]); n != v.Number {
					c.Misnamed = n
				}
			}
			return c, nil
		}
	}
	claim := ""
	if m := volumeName.FindStringSubmatch(filepath.Base(path)); m != nil {
		if n, _ := strconv.Atoi(m[2]); n >= 1 && n <= len(vols) {
			v := vols[n-1]
			want := v.Size
			if n == 1 {
				want += bodyStart
			}
			claim = fmt.Sprintf("; its name says volume %d, which is %d bytes with %s", n, want, v.SHA256)
		}
	}
	return nil, fmt.Errorf("%w: %s (%d bytes, %s) matches none of the %d volumes of %s %s: corrupt, truncated, or of another bundle%s",
		ErrIntegrity, path, st.Size(), got, len(vols), head.Manifest.Name, head.Manifest.Version, claim)
}

// OpenPath opens the bundle at path for one front-to-back read: a file, or
// a volume set (see OpenSet) read as one stream.
func OpenPath(path string) (io.ReadCloser, error) {
	if !IsVolumeSet(path) {
		return os.Open(path)
	}
	set, err := OpenSet(path)
	if err != nil {
		return nil, err
	}
	return set.Open()
}
