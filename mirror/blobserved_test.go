package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/airlock-dev/airlock/bundle"
	"github.com/airlock-dev/airlock/internal/checked"
	"github.com/airlock-dev/airlock/policy"
)

// TestBlobServedAnswers: how mirror reads a registry's answer to the
// ranged GET of a blob's last byte. Only a registry that serves the blob's
// bytes at its size counts as having it; an answer that cannot say so is
// not taken as "present".
func TestBlobServedAnswers(t *testing.T) {
	t.Parallel()
	data := []byte("0123456789abcdef")
	d := bundle.Descriptor{Digest: checked.Digest(data), Size: int64(len(data))}
	n := len(data)
	last := fmt.Sprintf("bytes %d-%d/%d", n-1, n-1, n)
	type answer struct {
		status   int
		headers  map[string]string
		body     string
		headSize string // Content-Length of a HEAD; "" for none
	}
	cases := []struct {
		name   string
		a      answer
		served bool
	}{
		{"the last byte at its size", answer{206, map[string]string{"Content-Range": last}, "f", ""}, true},
		{"another byte", answer{206, map[string]string{"Content-Range": last}, "x", ""}, false},
		{"another size", answer{206, map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", n-1, n-1, n+1)}, "f", ""}, false},
		{"another range", answer{206, map[string]string{"Content-Range": fmt.Sprintf("bytes 0-0/%d", n)}, "0", ""}, false},
		{"unknown size, HEAD gives it", answer{206, map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/*", n-1, n-1)}, "f", strconv.Itoa(n)}, true},
		{"unknown size, HEAD gives another", answer{206, map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/*", n-1, n-1)}, "f", strconv.Itoa(n + 5)}, false},
		{"Range ignored", answer{200, nil, string(data), ""}, true},
		{"Range ignored, longer blob", answer{200, nil, string(data) + "more", ""}, false},
		{"416 with an error body", answer{416, map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", n-3)}, "<Error><Code>InvalidRange</Code></Error>", ""}, false},
		{"404", answer{404, nil, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, ""}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				if !strings.HasSuffix(r.URL.Path, "/blobs/"+d.Digest) {
					http.NotFound(w, r)
					return
				}
				if r.Method == http.MethodHead {
					if c.a.headSize != "" {
						w.Header().Set("Content-Length", c.a.headSize)
					}
					return
				}
				for k, v := range c.a.headers {
					w.Header().Set(k, v)
				}
				if c.a.status == 200 {
					w.Header().Set("Content-Length", strconv.Itoa(len(c.a.body)))
				}
				w.WriteHeader(c.a.status)
				w.Write([]byte(c.a.body))
			}))
			t.Cleanup(srv.Close)
			host := strings.TrimPrefix(srv.URL, "http://")
			to, err := ParseTarget(host+"/p", true)
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewPusher(context.Background(), MirrorOptions{To: to, Policy: &policy.Policy{}, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			repo, _ := name.NewRepository(host+"/p/x", name.Insecure)
			got, err := p.m.blobServed(context.Background(), repo, d, func(off int64) (byte, error) { return data[off], nil })
			var nse *NotServedError
			if err != nil && !(c.name == "another byte" && errors.As(err, &nse)) {
				t.Fatalf("err = %v", err)
			}
			if got != c.served {
				t.Errorf("served = %v, want %v", got, c.served)
			}
		})
	}
}
