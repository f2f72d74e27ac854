// Package meter counts bytes as they pass through readers and writers, for
// sizes, throughput and progress bars.
package meter

import (
	"fmt"
	"io"
)

// Reader counts the bytes read through it and reports each read to OnRead,
// when set. N is not safe for concurrent use with Read.
type Reader struct {
	R      io.Reader
	N      int64
	OnRead func(n int)
}

// Read implements io.Reader.
func (m *Reader) Read(p []byte) (int, error) {
	n, err := m.R.Read(p)
	m.N += int64(n)
	if n > 0 && m.OnRead != nil {
		m.OnRead(n)
	}
	return n, err
}

// Writer counts the bytes written through it.
type Writer struct {
	W io.Writer
	N int64
}

// Write implements io.Writer.
func (m *Writer) Write(p []byte) (int, error) {
	n, err := m.W.Write(p)
	m.N += int64(n)
	return n, err
}

// Bytes formats n with binary units: "512 B", "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
