// Package benchmark measures the airlock binary against reference tools on
// the same machine in the same run, so that its numbers are ratios rather
// than absolute timings that only mean something on one computer.
//
// The package holds only benchmarks (run them with `make bench`, which is
// `go test -run '^$' -bench . -benchtime 1x ./internal/benchmark/`):
//
//   - BenchmarkPackVsTarZstd packs about 1 GiB of mixed images and a model and
//     compares the time with `tar -cf - DIR | zstd -T2 -3` over the same
//     files.
//   - BenchmarkPackPeakRSS packs a 0.5 GiB and a 2 GiB model and reports the
//     peak resident memory of each pack, which should not grow with input.
//   - BenchmarkInspectHeadOnly times `airlock inspect --json` on the 2 GiB
//     bundle, which reads only the metadata head.
//   - BenchmarkSignTime times `airlock sign` on a 10 GiB bundle and on a
//     10 MiB one; signing rewrites only the head, so the two should match.
//   - BenchmarkVerifyVsZstdSha256 compares `airlock verify` of the 2 GiB
//     bundle with `zstd -dc | sha256sum` and reports verify's peak memory.
//   - BenchmarkPackFromRegistry packs the release of BenchmarkMirrorVsCrane
//     from a docker-registry and compares the time and peak memory with
//     `crane pull --format oci` of its images followed by
//     `tar | zstd -T2 -3` of the layout and the model.
//   - BenchmarkMirrorVsCrane mirrors a 2.6 GB release (20 images on shared
//     base layers, signatures, referrers, SBOMs, a 1 GiB model) into a fresh
//     docker-registry and compares the time and the bytes uploaded with
//     `zstd -dc | tar -x` followed by `crane push` of every image.
//   - BenchmarkServeBundleVsMirror times the first pulled manifest and a full
//     `crane pull` of one image from `airlock serve --bundle` of the 1 GiB
//     mixed bundle against `airlock serve --data` after `airlock mirror` of
//     the same bundle, in the same run.
//
// The benchmarks run airlock as a subprocess: the binary named by the
// AIRLOCK_BIN environment variable, or one built with `go build` into a
// temporary directory. Their input is generated deterministically, once per
// test process, under AIRLOCK_BENCH_DIR (default: the system temporary
// directory) and removed when the process ends. docs/benchmarks.md describes
// the targets and the results measured so far.
package benchmark
