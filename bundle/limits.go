package bundle

// Limits of the format. A writer refuses to produce a bundle beyond them and
// a reader refuses to read one. docs/format.md lists the same numbers.
const (
	// FormatVersion is the bundle format version this package writes. It
	// reads this version and every version from MinFormatVersion up.
	FormatVersion = 2
	// MinFormatVersion is the oldest format version this package reads.
	MinFormatVersion = 1

	// MaxHeadSize bounds the decompressed head (all metadata entries with tar headers).
	MaxHeadSize = 64 << 20
	// MaxHeadCompressed bounds the compressed size of the head frame.
	MaxHeadCompressed = 64 << 20
	// MaxManifestSize bounds one manifest or index (the limit registries use).
	MaxManifestSize = 4 << 20
	// MaxConfigSize bounds one config blob kept in the head.
	MaxConfigSize = 8 << 20
	// MaxBundleManifestSize bounds airlock/bundle.json.
	MaxBundleManifestSize = 16 << 20
	// MaxEntries bounds the number of tar entries in a bundle.
	MaxEntries = 100_000
	// MaxArtifacts bounds the number of artifacts in one bundle.
	MaxArtifacts = 10_000
	// MaxNameLen bounds a tar entry name; every valid name is shorter.
	MaxNameLen = 100
	// MaxIndexDepth bounds nesting of image indexes below an artifact's root.
	MaxIndexDepth = 4
	// MaxFanOut bounds the children of one index and the layers of one manifest.
	MaxFanOut = 4096
	// MaxBlobSize bounds one blob (1 TiB).
	MaxBlobSize = 1 << 40
	// MaxWindow is the largest zstd window a reader accepts in the body.
	MaxWindow = 8 << 20
	// WriterWindow is the zstd window the writer uses for the body (what
	// `zstd -3` uses); it keeps the writer's memory small.
	WriterWindow = 2 << 20
	// MaxPadding bounds the zero padding frame after the head.
	MaxPadding = 1 << 20
	// HeadPadding is the room the writer leaves after the head frame so that
	// signatures can be added in place.
	HeadPadding = 64 << 10
	// MaxSignatures bounds the signatures in one envelope.
	MaxSignatures = 64
)
