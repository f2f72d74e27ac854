package sample

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file or directory in a sample layer. Names are relative
// (no leading slash) and directories end in "/".
type entry struct {
	name string
	mode int64
	body []byte
}

func dir(name string) entry { return entry{name: name, mode: 0o755} }

func file(name string, mode int64, body []byte) entry {
	return entry{name: name, mode: mode, body: body}
}

// gzipTar returns a gzip-compressed USTAR archive of entries in the given
// order, with root ownership and every time set to Timestamp.
func gzipTar(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uname:   "root",
			Gname:   "root",
			ModTime: Timestamp,
			Format:  tar.FormatUSTAR,
		}
		if e.name[len(e.name)-1] == '/' {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("sample: tar header for %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("sample: tar body for %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newLayer wraps gzip-compressed tar bytes as a layer of media type mt. The
// compressed bytes are served as they are, so the digest is stable.
func newLayer(gz []byte, mt types.MediaType) (v1.Layer, error) {
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil }
	return tarball.LayerFromOpener(open, tarball.WithMediaType(mt))
}

// baseLayerBytes is the shared base layer: a few text files under /etc and
// 200 KiB of seeded bytes in /usr/lib/base.bin.
func baseLayerBytes() ([]byte, error) {
	return gzipTar([]entry{
		dir("etc/"),
		file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\napp:x:65532:\n")),
		file("etc/hostname", 0o644, []byte("demo\n")),
		file("etc/os-release", 0o644, []byte(osRelease)),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
			"app:x:65532:65532:app:/app:/sbin/nologin\n")),
		dir("tmp/"),
		dir("usr/"),
		dir("usr/lib/"),
		file("usr/lib/base.bin", 0o644, seeded("base.bin", 200<<10)),
	})
}

const osRelease = `PRETTY_NAME="Airlock Demo Base 1.0"
NAME="Airlock Demo Base"
VERSION_ID="1.0"
VERSION="1.0"
ID=airlock-demo
HOME_URL="https://example.com/airlock-demo"
`

// appLayerBytes is a per-program layer: /app/<program> holding size seeded
// bytes that depend on program and arch, plus a VERSION file.
func appLayerBytes(program, arch string, size int) ([]byte, error) {
	return gzipTar([]entry{
		dir("app/"),
		file("app/VERSION", 0o644, []byte("1.0\n")),
		file("app/"+program, 0o755, seeded(program+"/"+arch, size)),
	})
}
