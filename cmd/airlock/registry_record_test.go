package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRecordingTransportIgnoresTLSRejection: a TLS server's answer to a
// plain-HTTP request (go-containerregistry pings loopback hosts over both
// schemes at once) does not count as the registry speaking plain HTTP, so
// --emit-config never writes plain HTTP for a TLS mirror.
func TestRecordingTransportIgnoresTLSRejection(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	rt := &recordingTransport{next: srv.Client().Transport, schemes: map[string]map[string]bool{}}
	for _, u := range []string{"http://" + host + "/v2/", "https://" + host + "/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if rt.answered(host, "http") || !rt.answered(host, "https") {
		t.Fatalf("recorded %v; want https only", rt.schemes[host])
	}
}
