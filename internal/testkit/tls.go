package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// SecureRegistry is a running registry that serves HTTPS with a
// certificate of a CA made for the test, and asks for basic auth.
type SecureRegistry struct {
	Registry
	// CAFile is the PEM file of the test CA that signed the registry's
	// certificate (for 127.0.0.1 and localhost).
	CAFile string
	// User and Password are the one account of the registry's htpasswd file.
	User, Password string
}

// StartSecure runs the CNCF distribution registry as Start does, but
// serving TLS (TLS 1.2+, a certificate for 127.0.0.1 and localhost signed by
// a new CA whose PEM is in CAFile) and requiring HTTP basic auth against an
// htpasswd file (bcrypt) with one account. It returns once GET /v2/
// answers 401 over verified TLS, and stops the registry when the test ends.
func StartSecure(t testing.TB) *SecureRegistry {
	t.Helper()
	bin := RequireTool(t, "docker-registry", "apt-get install docker-registry")
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	if err := os.Mkdir(storage, 0o755); err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	caPEM, certPEM, keyPEM, err := testCertificates()
	if err != nil {
		t.Fatalf("testregistry: certificates: %v", err)
	}
	user, password := "airlock", "s3cret-"+strconv.FormatInt(time.Now().UnixNano(), 36)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("testregistry: bcrypt: %v", err)
	}
	files := map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM, "htpasswd": []byte(user + ":" + string(hash) + "\n")}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatalf("testregistry: %v", err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var lastOut string
	for range bindAttempts {
		host, err := freeHost()
		if err != nil {
			t.Fatalf("testregistry: find a free port: %v", err)
		}
		config := filepath.Join(dir, "config.yml")
		conf := configYAML(storage, host) +
			"  tls:\n" +
			"    certificate: " + strconv.Quote(filepath.Join(dir, "cert.pem")) + "\n" +
			"    key: " + strconv.Quote(filepath.Join(dir, "key.pem")) + "\n" +
			"auth:\n" +
			"  htpasswd:\n" +
			"    realm: airlock-test\n" +
			"    path: " + strconv.Quote(filepath.Join(dir, "htpasswd")) + "\n"
		if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
			t.Fatalf("testregistry: write config: %v", err)
		}
		p, err := start(bin, config)
		if err != nil {
			t.Fatalf("testregistry: start %s: %v", bin, err)
		}
		err = p.waitReadyURL(client, "https://"+host+"/v2/", http.StatusUnauthorized)
		if err == nil {
			t.Cleanup(func() {
				client.CloseIdleConnections()
				if err := p.stop(); err != nil {
					t.Errorf("testregistry: stop registry at %s: %v", host, err)
				}
				if t.Failed() {
					t.Logf("testregistry: output of the registry at %s:\n%s", host, p.out.String())
				}
			})
			return &SecureRegistry{Registry: Registry{Host: host, Dir: storage}, CAFile: filepath.Join(dir, "ca.pem"), User: user, Password: password}
		}
		_ = p.stop()
		lastOut = p.out.String()
		if !errors.Is(err, errExited) || !strings.Contains(lastOut, "address already in use") {
			t.Fatalf("testregistry: registry at %s: %v; output:\n%s", host, err, lastOut)
		}
	}
	t.Fatalf("testregistry: no free port after %d attempts; last output:\n%s", bindAttempts, lastOut)
	return nil
}

// testCertificates makes a CA valid for a day and a server certificate it
// signs for 127.0.0.1, ::1 and localhost; all PEM, the key in PKCS #8.
func testCertificates() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "airlock test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// CertFiles writes a new test CA and a server certificate it signs for
// 127.0.0.1, ::1 and localhost (as StartSecure uses) into a directory of
// the test, and returns the three PEM files. dir also holds ca.crt, a copy
// of the CA, so it can be given to skopeo's --src-cert-dir as it is.
func CertFiles(t testing.TB) (dir, caFile, certFile, keyFile string) {
	t.Helper()
	caPEM, certPEM, keyPEM, err := testCertificates()
	if err != nil {
		t.Fatalf("testkit: certificates: %v", err)
	}
	dir = t.TempDir()
	files := map[string][]byte{"ca.pem": caPEM, "ca.crt": caPEM, "cert.pem": certPEM, "key.pem": keyPEM}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatalf("testkit: %v", err)
		}
	}
	return dir, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}
