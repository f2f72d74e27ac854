package verify

import (
	"time"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/policy"
)

// Report is what verification found, for people (text) and automation
// (`airlock verify --json`). docs/commands/verify.md documents the schema;
// fields are only ever added.
type Report struct {
	SchemaVersion int              `json:"schemaVersion"` // 1
	Verified      bool             `json:"verified"`
	Bundle        BundleInfo       `json:"bundle"`
	Policy        PolicyInfo       `json:"policy"`
	Signers       []SignerInfo     `json:"signers"`
	Checks        []policy.Check   `json:"checks"`
	Findings      []bundle.Finding `json:"findings"`
	// Upstream lists, per image a policy images rule applies to, which
	// upstream signature satisfied it; omitted when no rule applies.
	Upstream   []UpstreamCheck `json:"upstream,omitempty"`
	Throughput Throughput      `json:"throughput"`
	// Error is the reason verification failed; empty when Verified.
	Error string `json:"error,omitempty"`
	// Stage is where it failed: head, signatures, policy, upstream or body.
	Stage string `json:"stage,omitempty"`
	// Now is the single point in time every time check used.
	Now time.Time `json:"now"`
	// Trusted is true when the signatures and the policy accepted the head
	// (Verified needs the body checked as well).
	Trusted bool `json:"trusted"`
	// HeadOnly is true when the body was not read (Options.HeadOnly):
	// Verified is then false even for a trusted bundle.
	HeadOnly bool `json:"headOnly,omitempty"`
	// Artifacts lists what the bundle carries, from its head; empty when the
	// head could not be read.
	Artifacts []bundle.Artifact `json:"artifacts"`
	// Files lists every file of the model, file and SBOM artifacts with its
	// path, size and sha256 (bundle.ContentFile).
	Files []bundle.ContentFile `json:"files"`
}

// BundleInfo identifies the bundle.
type BundleInfo struct {
	Path           string    `json:"path,omitempty"`
	Name           string    `json:"name,omitempty"`
	Version        string    `json:"version,omitempty"`
	Sequence       uint64    `json:"sequence,omitempty"`
	Channel        string    `json:"channel,omitempty"`
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires"`
	Root           string    `json:"root,omitempty"`
	ManifestDigest string    `json:"manifestDigest,omitempty"`
	// SignaturesDigest is the digest of airlock/signatures.json, the DSSE
	// envelope whose signatures were checked; empty for an unsigned bundle.
	SignaturesDigest string `json:"signaturesDigest,omitempty"`
	Artifacts        int    `json:"artifacts"`
	Blobs            int    `json:"blobs"`
	Bytes            int64  `json:"bytes"`
}

// PolicyInfo names the policy and the rule that was applied.
type PolicyInfo struct {
	Path      string   `json:"path"`
	Digest    string   `json:"digest"`
	Rule      int      `json:"rule"` // index in bundles:, -1 when none matched
	Match     string   `json:"match,omitempty"`
	Signers   []string `json:"signers,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
	Channel   string   `json:"channel,omitempty"`
	MaxAge    string   `json:"maxAge,omitempty"`
}

// SignerInfo describes one signature on the bundle.
type SignerInfo struct {
	KeyID string `json:"keyid"`
	// Name is the key's name in the policy, empty for a key the policy does not know.
	Name string `json:"name,omitempty"`
	// Verified is true when the signature verified with a policy key.
	Verified bool `json:"verified"`
	// Counted is true when the key is one of the rule's signers (and so counts
	// towards the threshold).
	Counted bool   `json:"counted"`
	Note    string `json:"note,omitempty"`
	// Algorithm is the policy key's algorithm ("ecdsa-p256", "ed25519",
	// "rsa-3072"), for a signature that verified.
	Algorithm string `json:"algorithm,omitempty"`
}

// Throughput measures the streaming pass.
type Throughput struct {
	Bytes        int64   `json:"bytes"`        // decompressed body bytes checked
	Compressed   int64   `json:"compressed"`   // bundle bytes read
	Seconds      float64 `json:"seconds"`      // whole run
	MiBPerSecond float64 `json:"mibPerSecond"` // Bytes / Seconds
}
