package benchmark

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
)

// chunkSize is the unit of generated content. Each chunk is either
// pseudo-random bytes (incompressible, like weights or compressed binaries)
// or text (compressible, like logs and source code), and is derived only from
// a label and the chunk's index, so chunks can be produced in parallel and
// every run yields the same bytes.
const chunkSize = 4 << 20

// genWorkers is how many chunks are generated at once.
const genWorkers = 2

// chunkKind says what a chunk holds.
type chunkKind int

const (
	kindRandom chunkKind = iota
	kindText
)

// allRandom, allText and halfAndHalf choose a chunk's kind from its index.
func allRandom(int64) chunkKind { return kindRandom }
func allText(int64) chunkKind   { return kindText }
func halfAndHalf(i int64) chunkKind {
	if i%2 == 0 {
		return kindRandom
	}
	return kindText
}

// chunkSeed derives the ChaCha8 seed of one chunk.
func chunkSeed(label string, i int64) [32]byte {
	return sha256.Sum256([]byte("airlock/benchmark/" + label + "/" + strconv.FormatInt(i, 10)))
}

// generate writes size bytes to w: chunk i is of kind(i), seeded by label and i.
func generate(w io.Writer, label string, size int64, kind func(int64) chunkKind) error {
	bufs := make([][]byte, genWorkers)
	for i := range bufs {
		bufs[i] = make([]byte, chunkSize)
	}
	nChunks := (size + chunkSize - 1) / chunkSize
	for first := int64(0); first < nChunks; first += genWorkers {
		var wg sync.WaitGroup
		batch := min(genWorkers, nChunks-first)
		for j := range batch {
			idx := first + j
			n := min(int64(chunkSize), size-idx*chunkSize)
			buf := bufs[j][:n]
			wg.Go(func() { fillChunk(buf, kind(idx), chunkSeed(label, idx)) })
		}
		wg.Wait()
		for j := range batch {
			idx := first + j
			n := min(int64(chunkSize), size-idx*chunkSize)
			if _, err := w.Write(bufs[j][:n]); err != nil {
				return err
			}
		}
	}
	return nil
}

func fillChunk(dst []byte, k chunkKind, seed [32]byte) {
	if k == kindRandom {
		r := rand.NewChaCha8(seed)
		_, _ = r.Read(dst) // ChaCha8.Read never fails.
		return
	}
	fillText(dst, seed)
}

// vocabulary feeds the text generator: identifiers and words that recur in
// logs and source code.
var vocabulary = []string{
	"account", "address", "allocate", "append", "archive", "backend", "balance", "batch",
	"buffer", "bundle", "cache", "channel", "checksum", "client", "close", "cluster",
	"commit", "config", "connection", "context", "counter", "cursor", "customer", "database",
	"deadline", "decode", "default", "delete", "deploy", "digest", "encode", "endpoint",
	"error", "event", "expire", "export", "fetch", "field", "filter", "flush",
	"format", "gateway", "handler", "header", "health", "image", "import", "index",
	"invoice", "journal", "layer", "lease", "length", "limit", "listener", "loader",
	"lock", "manifest", "metric", "mirror", "model", "module", "network", "node",
	"offset", "option", "order", "packet", "parse", "payload", "payment", "pending",
	"policy", "pool", "prefix", "process", "queue", "quota", "reader", "record",
	"refund", "region", "registry", "release", "replica", "request", "resolve", "response",
	"retry", "router", "schema", "scheduler", "secret", "segment", "session", "shard",
	"signature", "snapshot", "socket", "source", "status", "storage", "stream", "subject",
	"table", "target", "tenant", "thread", "ticket", "timeout", "token", "trace",
	"transaction", "update", "upload", "user", "validate", "value", "version", "volume",
	"warehouse", "window", "worker", "writer", "zone", "timer", "tracker", "upstream",
}

var (
	levels     = []string{"INFO ", "INFO ", "INFO ", "DEBUG", "DEBUG", "WARN ", "ERROR", "INFO "}
	methods    = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE", "GET", "PATCH"}
	statuses   = []int{200, 200, 200, 201, 204, 304, 404, 500}
	components = []string{"api", "auth", "billing", "orders", "payments", "search", "sync", "worker"}
	hexDigits  = "0123456789abcdef"
)

// textGen writes log lines, source-like lines and JSON-like lines.
type textGen struct {
	r    *rand.ChaCha8
	ms   int64 // milliseconds since midnight of the log's clock
	line []byte
}

// fillText fills dst completely with text lines seeded by seed.
func fillText(dst []byte, seed [32]byte) {
	g := &textGen{r: rand.NewChaCha8(seed), ms: int64(seed[0]) * 100_000, line: make([]byte, 0, 512)}
	for n := 0; n < len(dst); {
		x := g.r.Uint64()
		g.line = g.line[:0]
		switch x % 8 {
		case 0, 1, 2, 3:
			g.logLine(x >> 3)
		case 4, 5, 6:
			g.sourceLine(x >> 3)
		default:
			g.jsonLine(x >> 3)
		}
		n += copy(dst[n:], g.line)
	}
}

func (g *textGen) word() string { return vocabulary[g.r.Uint64()%uint64(len(vocabulary))] }

func (g *textGen) words(k int) {
	for i := range k {
		if i > 0 {
			g.line = append(g.line, ' ')
		}
		g.line = append(g.line, g.word()...)
	}
}

func (g *textGen) hex(n int) {
	x := g.r.Uint64()
	for range n {
		g.line = append(g.line, hexDigits[x&15])
		x >>= 4
	}
}

func (g *textGen) pad(v int64, width int) {
	s := strconv.AppendInt(nil, v, 10)
	for range width - len(s) {
		g.line = append(g.line, '0')
	}
	g.line = append(g.line, s...)
}

func (g *textGen) logLine(x uint64) {
	g.ms = (g.ms + int64(x%97)) % 86_400_000
	g.line = append(g.line, "2026-01-01T"...)
	g.pad(g.ms/3_600_000, 2)
	g.line = append(g.line, ':')
	g.pad(g.ms/60_000%60, 2)
	g.line = append(g.line, ':')
	g.pad(g.ms/1000%60, 2)
	g.line = append(g.line, '.')
	g.pad(g.ms%1000, 3)
	g.line = append(g.line, "Z "...)
	x >>= 7
	g.line = append(g.line, levels[x&7]...)
	g.line = append(g.line, " ["...)
	g.line = append(g.line, components[(x>>3)&7]...)
	g.line = append(g.line, "] request_id="...)
	g.hex(16)
	user := int64((x >> 6) % 50_000)
	g.line = append(g.line, " user="...)
	g.line = strconv.AppendInt(g.line, user, 10)
	g.line = append(g.line, " method="...)
	g.line = append(g.line, methods[(x>>22)&7]...)
	g.line = append(g.line, " path=/api/v1/"...)
	g.line = append(g.line, g.word()...)
	g.line = append(g.line, '/')
	g.line = strconv.AppendInt(g.line, user, 10)
	g.line = append(g.line, " status="...)
	g.line = strconv.AppendInt(g.line, int64(statuses[(x>>25)&7]), 10)
	g.line = append(g.line, " duration_ms="...)
	g.line = strconv.AppendInt(g.line, int64((x>>28)%500), 10)
	g.line = append(g.line, ` msg="`...)
	g.words(3 + int((x>>37)%6))
	g.line = append(g.line, "\"\n"...)
}

func (g *textGen) sourceLine(x uint64) {
	for range x % 4 {
		g.line = append(g.line, '\t')
	}
	x >>= 2
	switch x % 8 {
	case 0:
		g.line = append(g.line, "if err := "...)
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, '.')
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, "(ctx, "...)
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, "); err != nil {\n"...)
	case 1:
		g.line = append(g.line, `return fmt.Errorf("`...)
		g.words(2 + int(x>>3)%4)
		g.line = append(g.line, ": %w\", err)\n"...)
	case 2:
		g.line = append(g.line, "}\n"...)
	case 3:
		g.line = append(g.line, "// "...)
		g.words(4 + int(x>>3)%8)
		g.line = append(g.line, ".\n"...)
	case 4:
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, " := "...)
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, '[')
		g.line = strconv.AppendInt(g.line, int64(x>>3)%4096, 10)
		g.line = append(g.line, ":]\n"...)
	case 5:
		g.line = append(g.line, "func (s *"...)
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, ") "...)
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, "(ctx context.Context, n int) error {\n"...)
	case 6:
		g.line = append(g.line, "for i := 0; i < len("...)
		g.line = append(g.line, g.word()...)
		g.line = append(g.line, "); i++ {\n"...)
	default:
		g.line = append(g.line, "\n"...)
	}
}

func (g *textGen) jsonLine(x uint64) {
	g.line = append(g.line, `{"`...)
	g.line = append(g.line, g.word()...)
	g.line = append(g.line, `":"`...)
	g.line = append(g.line, g.word()...)
	g.line = append(g.line, `","id":"`...)
	g.hex(12)
	g.line = append(g.line, `","count":`...)
	g.line = strconv.AppendInt(g.line, int64(x%100_000), 10)
	g.line = append(g.line, `,"tags":["`...)
	g.line = append(g.line, g.word()...)
	g.line = append(g.line, `","`...)
	g.line = append(g.line, g.word()...)
	g.line = append(g.line, "\"]}\n"...)
}
