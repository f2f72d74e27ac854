package mirror

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/airlock-dev/airlock/bundle"
)

// keepEdges remembers the first and last byte of a blob (read from open)
// so that what the registry serves can be checked after the local copy is
// gone; it returns the probe of those bytes.
func (m *mirrorer) keepEdges(d bundle.Descriptor, open opener) (probe, error) {
	if d.Size > 0 {
		first, err := byteAt(open, 0)
		if err != nil {
			return nil, err
		}
		last, err := byteAt(open, d.Size-1)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.edges[d.Digest] = [2]byte{first, last}
		m.mu.Unlock()
	}
	return m.edgeProbe(d), nil
}

// edgeProbe answers for the first and last byte of a blob kept by keepEdges.
func (m *mirrorer) edgeProbe(d bundle.Descriptor) probe {
	return func(off int64) (byte, error) {
		m.mu.Lock()
		e, ok := m.edges[d.Digest]
		m.mu.Unlock()
		switch {
		case !ok:
			return 0, fmt.Errorf("blob %s was not uploaded by this run", d.Digest)
		case off == 0:
			return e[0], nil
		case off == d.Size-1:
			return e[1], nil
		}
		return 0, fmt.Errorf("blob %s: byte %d is not kept", d.Digest, off)
	}
}

// checkServed is the last step before success: every tag this run is about
// resolves to its manifest byte for byte, every manifest of its graph is
// served by digest, every blob is served (a ranged GET of its last byte,
// compared with ours), and every referrer is listed (listed again if
// a concurrent writer dropped it). A registry that acknowledged what it
// does not keep fails the run here.
func (m *mirrorer) checkServed(ctx context.Context) error {
	if m.usedReferrersTag.Load() {
		// One wait for the run: a concurrent writer's read-merge-write
		// of a referrers tag our referrers are in (written by us or found
		// there) lands before we read the tag again.
		if err := settle(ctx, 1); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	// Tags and manifests, --jobs repositories at a time.
	g.Go(func() error {
		return m.eachRepository(gctx, func(ctx context.Context, j *job) error {
			repo := j.place.repo
			root := j.content.Manifests[len(j.content.Manifests)-1]
			if j.place.tag != "" && !m.siteSignedCopy(ctx, repo.Tag(j.place.tag), root) {
				if err := m.readBackRef(ctx, repo, j.place.tag, root.Digest); err != nil {
					return err
				}
			}
			for _, mf := range j.content.Manifests {
				ok, err := m.manifestServed(ctx, repo, mf)
				if err != nil {
					return err
				}
				if !ok {
					return &NotServedError{Ref: repo.String() + "@" + mf.Digest, Reason: "was pushed but the registry does not serve it byte for byte"}
				}
				if err := m.ensureListed(ctx, repo, mf, false, true); err != nil {
					return err
				}
			}
			return nil
		})
	})
	// Blobs, --jobs at a time: one ranged GET each, for every blob of
	// every repository.
	blobs, bctx := errgroup.WithContext(gctx)
	blobs.SetLimit(max(m.opts.Jobs, 1))
	seen := map[string]bool{}
	for _, j := range m.jobs {
		repo := j.place.repo
		list := append([]bundle.Descriptor{}, j.content.Layers...)
		for _, c := range j.content.Configs {
			list = append(list, c.Descriptor)
		}
		for _, b := range list {
			key := repo.String() + "@" + b.Digest
			if seen[key] {
				continue
			}
			seen[key] = true
			blobs.Go(func() error {
				if err := bctx.Err(); err != nil {
					return err
				}
				ok, err := m.blobServedRetry(bctx, repo, b, m.edgeProbe(b))
				if err != nil {
					return fmt.Errorf("%w: check blob %s: %w", ErrRegistry, key, err)
				}
				if !ok {
					return &NotServedError{Ref: key, Reason: "is needed by a pushed manifest but the registry does not serve it"}
				}
				return nil
			})
		}
	}
	// The first blob that fails ends the blob checks and, through g, the
	// manifest checks; it is the error returned.
	g.Go(blobs.Wait)
	return g.Wait()
}
