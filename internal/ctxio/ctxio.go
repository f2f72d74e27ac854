// Package ctxio binds readers to a context, so that a long copy stops soon
// after the context is cancelled.
package ctxio

import (
	"context"
	"io"
)

// Reader returns a reader that reads from r until ctx is done, then fails
// with ctx's error.
func Reader(ctx context.Context, r io.Reader) io.Reader { return &reader{ctx: ctx, r: r} }

// reader lives only as long as one copy; it holds the copy's context.
type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c *reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
