package bundle

import (
	"context"
	"io"
)

// ImageResolver turns an image reference from airlock.yaml into an
// ImageSource. Package mirror implements it for registries, OCI layouts and
// docker-archive files; the bundle package itself never touches the network.
type ImageResolver interface {
	Resolve(ctx context.Context, ref string) (ImageSource, error)
}

// ImageSource is one resolved image or index and access to what it references.
// Implementations must be safe for concurrent use.
type ImageSource interface {
	// Root returns the descriptor and exact bytes of the manifest or index the
	// reference resolved to. The bundle re-hashes the bytes.
	Root() (Descriptor, []byte)
	// Repository names where the image came from, e.g.
	// "registry.example.com/payments/api" or "oci:./images/worker".
	Repository() string
	// Manifest returns the exact bytes of a child manifest or index.
	Manifest(ctx context.Context, d Descriptor) ([]byte, error)
	// Blob opens a config or layer blob.
	Blob(ctx context.Context, d Descriptor) (io.ReadCloser, error)
	// Staged reports whether blobs are expensive to read (network, on-the-fly
	// compression) and so are copied once to temporary disk before writing.
	Staged() bool
}

// Progress receives progress from long operations. Implementations must be
// safe for concurrent use. A nil Progress reports nothing.
type Progress interface {
	// Start announces a unit of work (a blob, a phase) of total bytes.
	Start(id, label string, total int64)
	// Add reports n more bytes done for id.
	Add(id string, n int64)
	// Done marks id finished.
	Done(id string)
}

// progressReader reports bytes read to a Progress.
type progressReader struct {
	r  io.Reader
	p  Progress
	id string
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if n > 0 {
		pr.p.Add(pr.id, int64(n))
	}
	return n, err
}

func withProgress(r io.Reader, p Progress, id string) io.Reader {
	if p == nil {
		return r
	}
	return &progressReader{r: r, p: p, id: id}
}
