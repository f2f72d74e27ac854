package credentials

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// ErrCredentials reports credentials that could not be read: an auth file
// that is missing or malformed, or a credential helper that failed.
var ErrCredentials = errors.New("registry credentials")

// Options says where a Keychain reads credentials. The first that
// applies is used, the others are not read: AuthFile when set; else
// DockerConfig when the file exists; else the first of ContainersAuth that
// exists; else requests are anonymous.
type Options struct {
	// AuthFile is an auth file named explicitly (REGISTRY_AUTH_FILE);
	// it must exist. "" means none.
	AuthFile string
	// DockerConfig is the Docker configuration file (config.json), whose
	// credsStore and credHelpers name credential helpers.
	DockerConfig string
	// ContainersAuth are podman's auth.json locations, in order.
	ContainersAuth []string
}

// Keychain is an authn.Keychain that reads one credentials file once and
// asks each registry's credential helper at most once per Keychain, however
// many requests and repositories a run makes. Safe for concurrent use.
type Keychain struct {
	cf     *configfile.ConfigFile // nil: anonymous
	source string
	mu     sync.Mutex
	cache  map[string]*keychainEntry
}

type keychainEntry struct {
	once sync.Once
	auth authn.Authenticator
	err  error
}

var _ authn.Keychain = (*Keychain)(nil)

// New reads the credentials file opts selects.
func New(opts Options) (*Keychain, error) {
	k := &Keychain{cache: map[string]*keychainEntry{}}
	candidates := []string{opts.DockerConfig}
	candidates = append(candidates, opts.ContainersAuth...)
	if opts.AuthFile != "" {
		candidates = []string{opts.AuthFile}
	}
	for i, p := range candidates {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) && (opts.AuthFile == "" || i > 0) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
		}
		cf, err := config.LoadFromReader(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCredentials, p, err)
		}
		k.cf, k.source = cf, p
		break
	}
	return k, nil
}

// Source is the credentials file in use, "" when requests are anonymous.
func (k *Keychain) Source() string { return k.source }

// Helper is the credential helper that serves registry ("" for none): the
// docker-credential-NAME program named by credHelpers or credsStore.
func (k *Keychain) Helper(registry string) string {
	if k.cf == nil {
		return ""
	}
	if h, ok := k.cf.CredentialHelpers[registry]; ok {
		return h
	}
	return k.cf.CredentialsStore
}

// Resolve implements authn.Keychain: credentials per registry host, looked
// up (and a credential helper run) once.
func (k *Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if k.cf == nil {
		return authn.Anonymous, nil
	}
	key := target.RegistryStr()
	if key == name.DefaultRegistry {
		key = authn.DefaultAuthKey
	}
	k.mu.Lock()
	e := k.cache[key]
	if e == nil {
		e = &keychainEntry{}
		k.cache[key] = e
	}
	k.mu.Unlock()
	e.once.Do(func() {
		cfg, err := k.cf.GetAuthConfig(key)
		if err != nil {
			e.err = fmt.Errorf("%w for %s (from %s): %w", ErrCredentials, target.RegistryStr(), k.source, err)
			return
		}
		cfg.ServerAddress = ""
		if cfg == (types.AuthConfig{}) {
			e.auth = authn.Anonymous
			return
		}
		e.auth = authn.FromConfig(authn.AuthConfig{
			Username: cfg.Username, Password: cfg.Password, Auth: cfg.Auth,
			IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken,
		})
	})
	return e.auth, e.err
}
