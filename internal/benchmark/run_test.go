package benchmark

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// measurement is what one subprocess run cost.
type measurement struct {
	wall      time.Duration
	cpu       time.Duration // user + system, including reaped children
	maxRSSKiB int64         // peak resident set of the process or its largest child
	stdout    []byte
}

func (m measurement) seconds() float64   { return m.wall.Seconds() }
func (m measurement) peakRSSMB() float64 { return float64(m.maxRSSKiB) / 1024 }

// run starts name with args in dir, waits, and measures it. extraEnv is
// appended to the test's environment.
func run(ctx context.Context, dir string, extraEnv []string, name string, args ...string) (measurement, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return measurement{}, fmt.Errorf("%s %q: %w\n%s", name, args, err, stderr.Bytes())
	}
	m := measurement{wall: wall, stdout: stdout.Bytes()}
	// wait4 reports the child's usage together with the children it reaped
	// (Linux: RUSAGE_BOTH), so a shell pipeline counts tar and zstd too.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		m.maxRSSKiB = ru.Maxrss // KiB on Linux
	}
	return m, nil
}

// gnuTime is GNU time, which runPeak uses to read a child's peak RSS.
const gnuTime = "/usr/bin/time"

// runPeak is run with the peak RSS read by GNU time instead of from wait4.
// Go starts children with vfork, so the child calls exec while it still
// shares the test process's memory, and Linux records the test process's
// peak RSS as the child's when exec replaces that memory. wait4 therefore
// never reports less than the test process's own peak (tens of MiB here),
// which hides the memory of small processes. GNU time forks a copy of
// itself (about 1 MiB), so its figure has no such floor. The wall time
// includes starting GNU time, about a millisecond.
func runPeak(ctx context.Context, dir string, extraEnv []string, name string, args ...string) (measurement, error) {
	out, err := os.CreateTemp("", "airlock-bench-rss-")
	if err != nil {
		return measurement{}, err
	}
	out.Close()
	defer os.Remove(out.Name())
	m, err := run(ctx, dir, extraEnv, gnuTime, append([]string{"-o", out.Name(), "-f", "%M", name}, args...)...)
	if err != nil {
		return m, err
	}
	raw, err := os.ReadFile(out.Name())
	if err != nil {
		return m, err
	}
	// The file holds the peak in KiB; the number is the last field.
	fields := strings.Fields(string(raw))
	if len(fields) == 0 {
		return m, fmt.Errorf("%s wrote no peak RSS for %s", gnuTime, name)
	}
	kib, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		return m, fmt.Errorf("%s: reading the peak RSS of %s: %w", gnuTime, name, err)
	}
	m.maxRSSKiB = kib
	return m, nil
}

// selfPeakRSSMB returns the test process's own peak RSS (VmHWM) in MiB, the
// floor of every peak RSS that run reports, or 0 when it is not known.
func selfPeakRSSMB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kib, _ := strconv.ParseFloat(f[0], 64)
				return kib / 1024
			}
		}
	}
	return 0
}

// regularFiles lists the regular files under dir in lexical order.
func regularFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// warm reads every file under dir so that the next reader finds them in the
// page cache, and returns the number of bytes read.
func warm(dir string) (int64, error) {
	files, err := regularFiles(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return total, err
		}
		n, err := io.Copy(io.Discard, f)
		f.Close()
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// fileSize returns the size of p.
func fileSize(p string) (int64, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// freeBytes returns the bytes available to this user in the file system holding dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// mib converts bytes to MiB.
func mib(n int64) float64 { return float64(n) / (1 << 20) }
