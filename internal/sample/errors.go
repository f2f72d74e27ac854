package sample

import "errors"

var (
	// ErrInvalidHost means a registry host is not a valid "host[:port]"
	// (for example it is empty, has a scheme or a path). Pass a bare host
	// such as "127.0.0.1:5000" or "registry.example.com".
	ErrInvalidHost = errors.New("invalid registry host")

	// ErrInvalidImage means an [Image] sets neither or both of Index and
	// Image; exactly one must be set.
	ErrInvalidImage = errors.New("image entry must set exactly one of Index and Image")

	// ErrNotSingleImage means a multi-arch index was given where only a
	// single image fits, such as a `docker save` archive.
	ErrNotSingleImage = errors.New("multi-arch index cannot be written as a single image")
)
