package benchmark

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveRounds is how many times each path of BenchmarkServeBundleVsMirror
// runs; the fastest counts.
const serveRounds = 2

// servingAddr finds the address in the serving line of `airlock serve`,
// with --data or --bundle.
var servingAddr = regexp.MustCompile(`as an OCI registry on http://(127\.0\.0\.1:\d+)|serving an OCI registry on http://(127\.0\.0\.1:\d+)`)

// server is a running `airlock serve` subprocess.
type server struct {
	cmd  *exec.Cmd
	host string
}

// startServe runs `airlock serve args... --addr 127.0.0.1:0` and returns
// once it printed its serving line.
func startServe(ctx context.Context, bin string, args ...string) (*server, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), sourceDateEpoch)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan string, 1)
	var lines []string // what it printed before serving, for the error
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingAddr.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1] + m[2]
				io.Copy(io.Discard, stderr)
				return
			}
			lines = append(lines, sc.Text())
		}
		close(found)
	}()
	select {
	case host, ok := <-found:
		if !ok {
			cmd.Wait()
			return nil, fmt.Errorf("airlock serve %v exited before serving: %v", args, lines)
		}
		return &server{cmd: cmd, host: host}, nil
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("airlock serve %v: no serving line within 2 minutes", args)
	}
}

// cpu returns the CPU time (user + system) the server has used so far,
// from /proc/PID/stat (clock ticks of 10 ms).
func (s *server) cpu() time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: the fields follow its closing ")".
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// stop sends SIGTERM and waits for the exit.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// getJSON GETs http://host/path into v.
func getJSON(ctx context.Context, host, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// getManifest pulls one manifest by tag, as a client would.
func getManifest(ctx context.Context, host, repo, tag string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET manifest %s:%s: %s", repo, tag, resp.Status)
	}
	return nil
}

// servePath is one way to make the bundle's images pullable, timed.
type servePath struct {
	first time.Duration // from the start until the first manifest was pulled
	pull  time.Duration // crane pull of one whole image after that
	cpu   time.Duration // CPU the server used during the pull
	prep  time.Duration // for mirror: the mirror run alone
}

// BenchmarkServeBundleVsMirror measures, on the 1 GiB mixed release (three
// 200 MiB images and a 400 MiB model), the two ways a site without a
// registry gets pullable images from a bundle: `airlock serve --bundle`
// (head verified, content read from the frames on request) against
// `airlock serve --data` after `airlock mirror` of the same bundle. For
// each it times the first pulled manifest from the moment the operator
// starts (the mirror included) and a full `crane pull` of one image.
func BenchmarkServeBundleVsMirror(b *testing.B) {
	requireFree(b, 5<<30)
	bin := need(b, "the airlock binary", fx.binary)
	keys := need(b, "the signing keys", fx.keys)
	src := need(b, "the 1 GiB mixed release", fx.mixed)
	crane := craneBinary(b)
	ctx := b.Context()
	dir := filepath.Join(fx.root, "serve")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	bundlePath := filepath.Join(dir, "mixed.airlock")
	if _, err := packTo(ctx, bin, src, bundlePath); err != nil {
		b.Fatal(err)
	}
	if _, err := run(ctx, dir, []string{benchPassword}, bin, "sign", bundlePath, "--key", keyPath(keys, signingKeyNames[0])); err != nil {
		b.Fatal(err)
	}
	pol := filepath.Join(keys, policyFile)
	load := loadAverage()

	// The image to pull: the first repository the bundle server lists
	// that is not a model, and its tag.
	probe, err := startServe(ctx, bin, "--bundle", bundlePath, "--policy", pol)
	if err != nil {
		b.Fatal(err)
	}
	var cat struct {
		Repositories []string `json:"repositories"`
	}
	var repo, tag string
	if err := getJSON(ctx, probe.host, "/v2/_catalog", &cat); err != nil {
		probe.stop()
		b.Fatal(err)
	}
	for _, r := range cat.Repositories {
		if filepath.Dir(r) == "models" {
			continue
		}
		var tl struct {
			Tags []string `json:"tags"`
		}
		if err := getJSON(ctx, probe.host, "/v2/"+r+"/tags/list", &tl); err == nil && len(tl.Tags) > 0 {
			repo, tag = r, tl.Tags[0]
			break
		}
	}
	probe.stop()
	if repo == "" {
		b.Fatalf("the bundle server lists no tagged image: %v", cat.Repositories)
	}

	pullImage := func(host string, round int, which string) (time.Duration, error) {
		out := filepath.Join(dir, fmt.Sprintf("pull-%s-%d", which, round))
		defer os.RemoveAll(out)
		m, err := run(ctx, dir, nil, crane, "pull", "--insecure", "--format", "oci", host+"/"+repo+":"+tag, out)
		return m.wall, err
	}
	var fromBundle, fromMirror []servePath
	b.ResetTimer()
	for range b.N {
		for round := range serveRounds {
			// serve --bundle
			if _, err := warm(dir); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			s, err := startServe(ctx, bin, "--bundle", bundlePath, "--policy", pol)
			if err != nil {
				b.Fatal(err)
			}
			if err := getManifest(ctx, s.host, repo, tag); err != nil {
				s.stop()
				b.Fatal(err)
			}
			p := servePath{first: time.Since(start)}
			c0 := s.cpu()
			p.pull, err = pullImage(s.host, round, "bundle")
			p.cpu = s.cpu() - c0
			s.stop()
			if err != nil {
				b.Fatal(err)
			}
			fromBundle = append(fromBundle, p)

			// serve --data after mirror, into a fresh directory
			data := filepath.Join(dir, fmt.Sprintf("data-%d", round))
			if _, err := warm(dir); err != nil {
				b.Fatal(err)
			}
			start = time.Now()
			s, err = startServe(ctx, bin, "--data", data)
			if err != nil {
				b.Fatal(err)
			}
			mstart := time.Now()
			_, err = run(ctx, dir, nil, bin, "mirror", bundlePath, "--to", s.host, "--insecure-registry", s.host, "--policy", pol, "-q")
			if err != nil {
				s.stop()
				b.Fatal(err)
			}
			q := servePath{prep: time.Since(mstart)}
			if err := getManifest(ctx, s.host, repo, tag); err != nil {
				s.stop()
				b.Fatal(err)
			}
			q.first = time.Since(start)
			c0 = s.cpu()
			q.pull, err = pullImage(s.host, round, "mirror")
			q.cpu = s.cpu() - c0
			s.stop()
			os.RemoveAll(data)
			if err != nil {
				b.Fatal(err)
			}
			fromMirror = append(fromMirror, q)
		}
	}
	b.StopTimer()
	best := func(ps []servePath, f func(servePath) time.Duration) time.Duration {
		m := f(ps[0])
		for _, p := range ps[1:] {
			m = min(m, f(p))
		}
		return m
	}
	first := func(p servePath) time.Duration { return p.first }
	pull := func(p servePath) time.Duration { return p.pull }
	prep := func(p servePath) time.Duration { return p.prep }
	bf, mf := best(fromBundle, first), best(fromMirror, first)
	bp, mp := best(fromBundle, pull), best(fromMirror, pull)
	b.ReportMetric(bf.Seconds(), "s-first-manifest-bundle")
	b.ReportMetric(mf.Seconds(), "s-first-manifest-mirror")
	b.ReportMetric(bp.Seconds(), "s-pull-bundle")
	b.ReportMetric(mp.Seconds(), "s-pull-mirror")
	b.Logf("image %s:%s of %s; %d rounds, fastest of each; load average before: %s", repo, tag, bundlePath, serveRounds, load)
	b.Logf("first manifest: serve --bundle %.2fs (start, head verified, first GET) vs serve --data + mirror %.2fs (mirror alone %.2fs): %.3fx",
		bf.Seconds(), mf.Seconds(), best(fromMirror, prep).Seconds(), bf.Seconds()/mf.Seconds())
	b.Logf("full crane pull of the image: from the bundle %.2fs vs from the mirrored registry %.2fs: %.2fx", bp.Seconds(), mp.Seconds(), bp.Seconds()/mp.Seconds())
	cpu := func(p servePath) time.Duration { return p.cpu }
	b.Logf("server CPU during the pull (fewest of the rounds): serve --bundle %.2fs, serve --data %.2fs", best(fromBundle, cpu).Seconds(), best(fromMirror, cpu).Seconds())
	for i := range fromBundle {
		b.Logf("round %d: bundle first %.2fs pull %.2fs (server CPU %.2fs); mirror first %.2fs (mirror %.2fs) pull %.2fs (server CPU %.2fs)", i+1,
			fromBundle[i].first.Seconds(), fromBundle[i].pull.Seconds(), fromBundle[i].cpu.Seconds(),
			fromMirror[i].first.Seconds(), fromMirror[i].prep.Seconds(), fromMirror[i].pull.Seconds(), fromMirror[i].cpu.Seconds())
	}
}
