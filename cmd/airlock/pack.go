package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/pack"
	"github.com/airlock-dev/airlock/source"
)

type packFlags struct {
	file     string
	output   string
	jobs     int
	level    string
	tmpDir   string
	prefetch int
	registry registryFlags
	quiet    bool
	json     bool
	keys     []string
	sequence uint64
	expires  string
	channel  string
	platform []string
	volume   string
	frame    string
}

func (f *packFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.file, "file", "f", pack.SpecFileName, "release description to pack")
	fs.StringVarP(&f.output, "output", "o", "", "bundle to write, or - for standard output (default NAME-VERSION.airlock in the current directory)")
	fs.IntVar(&f.jobs, "jobs", 4, "concurrent pulls and hashes")
	fs.StringVar(&f.level, "level", "default", "compression level: fastest, default or better")
	fs.StringVar(&f.volume, "volume-size", "", "write the bundle as numbered volumes OUT.001, OUT.002, ... of at most this size (e.g. 4GiB for FAT32, 4482MiB for a DVD); cat of the volumes in order is the bundle")
	fs.StringVar(&f.frame, "frame-size", "", "body frame size, a multiple of 512 from 64KiB to 64MiB (default 4MiB, larger for bodies over 64 GiB): smaller frames mean finer random access for serve --bundle and smaller minimum volumes, larger frames compress a little better")
	fs.StringVar(&f.tmpDir, "tmp-dir", "", "directory for pulled layers waiting for their turn when memory is full (default: next to the output)")
	fs.IntVar(&f.prefetch, "prefetch-memory", pack.DefaultPrefetchMemory>>20, "MiB of pulled layers held in memory ahead of the bundle writer; beyond it they wait in --tmp-dir (0: all wait there)")
	f.registry.register(fs, "source registries")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print only errors and the path of the bundle written")
	fs.BoolVar(&f.json, "json", false, "print the summary as JSON on stdout")
	fs.StringArrayVarP(&f.keys, "key", "k", nil, "sign while packing with this private key: a file or a pkcs11: URI (repeatable)")
	fs.Uint64Var(&f.sequence, "sequence", 0, "signed sequence number, must grow with every release of this name (default: creation time in Unix seconds)")
	fs.StringVar(&f.expires, "expires", "90d", "validity: a duration (30d, 720h) from creation, or an RFC 3339 time")
	fs.StringVar(&f.channel, "channel", "", "bind the bundle to an audience, e.g. prod (policies may require it)")
	fs.StringSliceVar(&f.platform, "platform", nil, "keep only these platforms (os/arch[/variant], comma-separated or repeated) of every image without its own platforms: in airlock.yaml; overrides the file's top-level platforms:")
}

func (f *packFlags) validate(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (the release description is given with -f)", args[0])
	}
	if f.jobs < 1 || f.jobs > 64 {
		return usagef("--jobs must be between 1 and 64, not %d", f.jobs)
	}
	if f.prefetch < 0 || f.prefetch > 1<<16 {
		return usagef("--prefetch-memory must be between 0 and 65536 (MiB), not %d", f.prefetch)
	}
	if _, err := bundle.ParseLevel(f.level); err != nil {
		return usagef("--level: %v", err)
	}
	if _, _, err := parseExpiry(f.expires); err != nil {
		return usagef("--expires: %v", err)
	}
	if f.channel != "" && !bundle.ValidChannel(f.channel) {
		return usagef("--channel %q: letters, digits, '.', '_', '-' or '/', at most 128, starting with a letter or digit", f.channel)
	}
	if len(f.keys) > bundle.MaxSignatures {
		return usagef("at most %d --key flags", bundle.MaxSignatures)
	}
	if f.volume != "" {
		n, err := parseByteSize(f.volume)
		if err != nil {
			return usagef("--volume-size: %v", err)
		}
		if n < bundle.MinFrameSize {
			return usagef("--volume-size %s is smaller than the smallest frame (64KiB)", f.volume)
		}
		if f.output == stdinPath {
			return usagef("--volume-size writes files; it cannot be used with -o -")
		}
	}
	if f.frame != "" {
		n, err := parseByteSize(f.frame)
		if err != nil {
			return usagef("--frame-size: %v", err)
		}
		if n < bundle.MinFrameSize || n > bundle.MaxFrameSize || n%512 != 0 {
			return usagef("--frame-size %s: must be a multiple of 512 bytes from 64KiB to 64MiB", f.frame)
		}
	}
	seen := map[string]bool{}
	for _, p := range f.platform {
		if !bundle.ValidPlatform(p) {
			return usagef("--platform %q is not os/arch or os/arch/variant (e.g. linux/amd64,linux/arm64)", p)
		}
		if seen[p] {
			return usagef("--platform %q is given twice", p)
		}
		seen[p] = true
	}
	return nil
}

// parseExpiry reads --expires: a duration from creation ("30d", "720h") or an
// absolute RFC 3339 time.
func parseExpiry(s string) (time.Duration, time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return 0, t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, time.Time{}, err
	}
	if d <= 0 {
		return 0, time.Time{}, fmt.Errorf("%q must be positive", s)
	}
	return d, time.Time{}, nil
}

// parseDuration accepts Go durations and a whole number of days ("30d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil || n > 36500 {
			return 0, fmt.Errorf("%q is not a number of days like 30d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30d or 720h or an RFC 3339 time", s)
	}
	return d, nil
}

func packCommand() command {
	return command{
		name:    "pack",
		summary: "Pull and pack the images, models, files, directories, Helm charts and SBOMs listed in airlock.yaml into one bundle.",
		usage:   "[-f airlock.yaml] [-o NAME-VERSION.airlock] [flags]",
		examples: `  airlock pack
  airlock pack -f release/airlock.yaml -o payments-1.4.2.airlock
  airlock pack --insecure-registry registry.lab:5000 --level better --jobs 8
  airlock pack --volume-size 4GiB   # NAME-VERSION.airlock.001, .002, ... for FAT32 sticks
  airlock pack --platform linux/amd64,linux/arm64   # every image without its own platforms:
  SOURCE_DATE_EPOCH=1767225600 airlock pack   # reproducible: same inputs, same bytes
  AIRLOCK_PKCS11_PIN=... airlock pack --key 'pkcs11:token=release;object=airlock'   # key held in an HSM
  REGISTRY_AUTH_FILE=auth.json airlock pack   # credentials: no --creds flag; docker/podman login, or an auth file (as skopeo)
`,
		setup: func(fs *pflag.FlagSet) func(context.Context, *env, []string) error {
			f := &packFlags{}
			f.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if err := f.validate(args); err != nil {
					return err
				}
				return runPack(ctx, e, f)
			}
		},
	}
}

// packSummary is the JSON printed by `airlock pack --json`.
type packSummary struct {
	// Bundle is the file written; for a volume set, volume 1 (which every
	// command takes as the set), with every volume in Volumes.
	Bundle         string   `json:"bundle"`
	Volumes        []string `json:"volumes,omitempty"`
	Name           string   `json:"name"`
	Version        string   `json:"version"`
	Root           string   `json:"root"`
	ManifestDigest string   `json:"manifestDigest"`
	Artifacts      int      `json:"artifacts"`
	Blobs          int      `json:"blobs"`
	BytesIn        int64    `json:"bytesIn"`
	BytesOut       int64    `json:"bytesOut"`
	Ratio          float64  `json:"ratio"`
	Seconds        float64  `json:"seconds"`
}

func runPack(ctx context.Context, e *env, f *packFlags) error {
	spec, err := pack.LoadSpec(f.file)
	if err != nil {
		return err
	}
	created, err := sourceDateEpoch(e.getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	out := f.output
	if out == "" {
		out = fmt.Sprintf("%s-%s.airlock", spec.Name, spec.Version)
	}
	level, _ := bundle.ParseLevel(f.level)
	var volumeSize, frameSize int64
	if f.volume != "" {
		volumeSize, _ = parseByteSize(f.volume)
	}
	if f.frame != "" {
		frameSize, _ = parseByteSize(f.frame)
	}
	signers, release, err := loadSigners(ctx, e, f.keys)
	if err != nil {
		return err
	}
	defer release()
	validity, expiresAt, _ := parseExpiry(f.expires)
	if created.Unix() <= 0 && !created.IsZero() && f.sequence == 0 {
		return fmt.Errorf("SOURCE_DATE_EPOCH=%s gives no usable default sequence; pass --sequence", e.getenv("SOURCE_DATE_EPOCH"))
	}
	if expiresAt.IsZero() {
		base := created
		if base.IsZero() {
			base = time.Now().UTC().Truncate(time.Second)
			created = base
		}
		expiresAt = base.Add(validity)
	}
	if !created.IsZero() && !expiresAt.After(created) {
		return usagef("--expires %s is not after the creation time %s", f.expires, created.Format(time.RFC3339))
	}
	rc, err := newRegistryClient(e, &f.registry)
	if err != nil {
		return err
	}
	charts, err := source.NewChartRepos(source.ChartRepoOptions{InsecureHosts: f.registry.insecure, UserAgent: "airlock/" + version()})
	if err != nil {
		return err
	}
	prog := newProgress(e, f.quiet || f.json, "pack")
	// With -o -, the bundle goes to standard output and the report to
	// standard error.
	var stream io.Writer
	report := e.stdout
	if out == stdinPath {
		stream, report = e.stdout, e.stderr
	}
	res, err := pack.Pack(ctx, spec, pack.Options{
		Output: out,
		Stream: stream,
		Images: source.NewPuller(source.PullOptions{
			InsecureRegistries: f.registry.insecure, Transport: rc.transport, Keychain: rc.keychain, UserAgent: "airlock/" + version(),
		}),
		TempDir:        f.tmpDir,
		PrefetchMemory: prefetchBytes(f.prefetch),
		VolumeSize:     volumeSize,
		FrameSize:      frameSize,
		Jobs:           f.jobs,
		Level:          level,
		Created:        created,
		Progress:       prog.bundleProgress(),
		Signers:        signers,
		// images[].verify in airlock.yaml: cosign key-based signatures.
		ImageVerifier: source.CosignVerifier{},
		// charts[].repo: classic chart repositories.
		Charts:    charts,
		Platforms: f.platform,
		Statement: bundle.StatementOptions{
			Sequence: f.sequence,
			Expires:  expiresAt,
			Channel:  f.channel,
		},
	})
	prog.wait()
	if err != nil {
		var td *pack.TempDirError
		if errors.As(err, &td) {
			return &hintedError{err: err, hint: "choose another directory with --tmp-dir"}
		}
		return rc.withHint(err)
	}
	m := res.Manifest
	ratio := 0.0
	if res.BytesOut > 0 {
		ratio = float64(res.BytesIn) / float64(res.BytesOut)
	}
	if f.json {
		abs, _ := filepath.Abs(res.Path)
		var vols []string
		for _, v := range res.Volumes {
			a, _ := filepath.Abs(v)
			vols = append(vols, a)
		}
		if len(vols) > 0 {
			abs = vols[0]
		}
		if stream != nil {
			abs = "-"
		}
		return writeJSON(report, packSummary{
			Bundle: abs, Volumes: vols, Name: m.Name, Version: m.Version, Root: m.Root.Digest, ManifestDigest: res.ManifestDigest,
			Artifacts: m.Totals.Artifacts, Blobs: m.Totals.Blobs, BytesIn: res.BytesIn, BytesOut: res.BytesOut,
			Ratio: ratio, Seconds: res.Duration.Seconds(),
		})
	}
	if f.quiet {
		// Only the bundle's path, which a script needs when -o was not given.
		switch {
		case len(res.Volumes) > 0:
			fmt.Fprintln(report, strings.Join(res.Volumes, "\n"))
		case stream == nil:
			fmt.Fprintln(report, res.Path)
		}
		return nil
	}
	where := res.Path
	if stream != nil {
		where = "standard output"
	}
	if len(res.Volumes) > 0 {
		where = fmt.Sprintf("%d volumes %s ... %s", len(res.Volumes), filepath.Base(res.Volumes[0]), filepath.Base(res.Volumes[len(res.Volumes)-1]))
	}
	fmt.Fprintf(report, "packed %s %s -> %s: %s, %s, %s in, %s out (ratio %.2f), %s\n",
		m.Name, m.Version, where, plural(m.Totals.Artifacts, "artifact"), plural(m.Totals.Blobs, "unique blob"), humanBytes(res.BytesIn), humanBytes(res.BytesOut), ratio, res.Duration.Round(time.Millisecond))
	return nil
}

// sourceDateEpoch parses SOURCE_DATE_EPOCH; empty means "now".
func sourceDateEpoch(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs < 0 || secs > 253402300799 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds since 1970 (unset it or fix it)", v)
	}
	return time.Unix(secs, 0).UTC(), nil
}

// parseByteSize reads a size such as 4GiB, 700MiB, 4GB or 1048576 (binary
// units KiB, MiB, GiB, TiB; decimal kB, MB, GB, TB; plain bytes).
func parseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || n*float64(mult) > float64(1<<50) {
		return 0, fmt.Errorf("%q is not a size like 4GiB, 700MiB or 4GB", s)
	}
	return int64(n * float64(mult)), nil
}

// prefetchBytes maps --prefetch-memory (MiB, 0 for none) to
// pack.Options.PrefetchMemory (bytes, < 0 for none).
func prefetchBytes(mib int) int64 {
	if mib == 0 {
		return -1
	}
	return int64(mib) << 20
}
