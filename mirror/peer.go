package mirror

import (
	"context"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/verify"
)

// Peer lets another consumer of the same verification pass drive a Pusher:
// `airlock install --registry` hands it the blobs install does not need and
// the staged files the registry wants too (install.Peer). Finish keeps the
// result in Result.
type Peer struct {
	*Pusher
	// Result is what was pushed, set by Finish.
	Result *Result
}

// BlobFile queues the upload of a blob the caller verified and keeps at path.
func (p *Peer) BlobFile(_ context.Context, d bundle.Descriptor, path string) error {
	return p.Pusher.BlobFile(d, path)
}

// Finish completes the push (see Pusher.Finish) and keeps its result.
func (p *Peer) Finish(ctx context.Context, rep *verify.Report, verr error) error {
	res, err := p.Pusher.Finish(ctx, rep, verr)
	p.Result = res
	return err
}
