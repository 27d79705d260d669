//go:build e2e

package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// Registry is the CNCF distribution registry (Debian's docker-registry) on
// loopback, plain HTTP, storing blobs in a temp dir. It can be stopped and
// started again on the same address with the same content.
type Registry struct {
	Host string // 127.0.0.1:PORT, the registry part of image references
	// User and Password are what a private registry (StartPrivateRegistry)
	// requires on every request (htpasswd, HTTP basic); empty for a
	// registry anyone can read and write.
	User, Password string

	tb      TB
	bin     string
	dir     string
	config  string
	mu      sync.Mutex
	proc    *Process
	name    string
	started int
	// CACertPEM is the CA that issued the registry's TLS certificate
	// (StartTLSRegistry); empty for a plain HTTP registry.
	CACertPEM []byte
	tlsTr     *http.Transport // trusts CACertPEM only; nil for plain HTTP
}

// StartRegistry writes a config.yml for a filesystem-backed registry under
// dir and starts it. name distinguishes log files when there are several.
func StartRegistry(ctx context.Context, tb TB, bin, dir, name string) (*Registry, error) {
	return startRegistry(ctx, tb, bin, dir, name, "", "", nil)
}

// StartPrivateRegistry is StartRegistry for a registry that requires user
// and password (htpasswd, bcrypt) on every request, reads included, as a
// private registry does.
func StartPrivateRegistry(ctx context.Context, tb TB, bin, dir, name, user, password string) (*Registry, error) {
	if user == "" || password == "" {
		return nil, fmt.Errorf("start registry %s: a private registry needs a user and a password", name)
	}
	return startRegistry(ctx, tb, bin, dir, name, user, password, nil)
}

// StartTLSRegistry is StartRegistry for a registry served over HTTPS with
// a certificate for 127.0.0.1 that ca issues: a registry with a private
// CA. Use a CA of its own, not the environment's, so that nothing trusts
// it by accident. The harness's own requests (readiness, PushRandom)
// trust ca; cosign signs with --allow-insecure-registry, so it does not
// verify the certificate.
func StartTLSRegistry(ctx context.Context, tb TB, bin, dir, name string, ca *CA) (*Registry, error) {
	if ca == nil {
		return nil, fmt.Errorf("start registry %s: a TLS registry needs a CA", name)
	}
	return startRegistry(ctx, tb, bin, dir, name, "", "", ca)
}

func startRegistry(ctx context.Context, tb TB, bin, dir, name, user, password string, ca *CA) (*Registry, error) {
	host, err := freeAddr()
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dir, name+"-storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	config := filepath.Join(dir, name+"-config.yml")
	yml := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, storage, host)
	if ca != nil {
		cert, key, err := ca.WriteServingPair(dir, name+"-tls")
		if err != nil {
			return nil, fmt.Errorf("start registry: %w", err)
		}
		yml += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("start registry: htpasswd: %w", err)
		}
		htpasswd := filepath.Join(dir, name+"-htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("start registry: %w", err)
		}
		yml += fmt.Sprintf("auth:\n  htpasswd:\n    realm: signgate-e2e\n    path: %s\n", htpasswd)
	}
	if err := os.WriteFile(config, []byte(yml), 0o644); err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	r := &Registry{Host: host, User: user, Password: password, tb: tb, bin: bin, dir: dir, config: config, name: name}
	if ca != nil {
		roots := x509.NewCertPool()
		roots.AddCert(ca.cert)
		r.CACertPEM = ca.CertPEM
		r.tlsTr = http.DefaultTransport.(*http.Transport).Clone()
		r.tlsTr.TLSClientConfig = &tls.Config{RootCAs: roots}
		tb.Cleanup(r.tlsTr.CloseIdleConnections)
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Start (re)starts the registry and waits until /v2/ answers.
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		if exited, _ := r.proc.Exited(); !exited {
			return nil
		}
	}
	p, err := startProcess(r.tb, r.dir, procSpec{
		name: r.name,
		bin:  r.bin,
		args: []string{"serve", r.config},
	})
	if err != nil {
		return err
	}
	r.proc = p
	r.started++
	return p.waitReady(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.scheme()+"://"+r.Host+"/v2/", nil)
		if err != nil {
			return err
		}
		if r.User != "" {
			req.SetBasicAuth(r.User, r.Password)
		}
		resp, err := (&http.Client{Transport: r.transport()}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
}

// Stop stops the registry; connections to Host are refused until Start.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.proc.Stop(2 * time.Second)
	}
}

func (r *Registry) scheme() string {
	if r.tlsTr != nil {
		return "https"
	}
	return "http"
}

// transport is what the harness reaches the registry with: for a TLS
// registry one trusting CACertPEM only.
func (r *Registry) transport() http.RoundTripper {
	if r.tlsTr == nil {
		return http.DefaultTransport
	}
	return r.tlsTr
}

// Repo returns HOST/repo.
func (r *Registry) Repo(repo string) string { return r.Host + "/" + repo }

// PushRandom builds a small random image in Go, pushes it as HOST/repo:tag
// and returns its digest reference HOST/repo@sha256:….
func (r *Registry) PushRandom(ctx context.Context, repo, tag string) (name.Digest, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return name.Digest{}, fmt.Errorf("build random image: %w", err)
	}
	ref, err := name.NewTag(r.Repo(repo)+":"+tag, name.Insecure)
	if err != nil {
		return name.Digest{}, fmt.Errorf("push %s/%s:%s: %w", r.Host, repo, tag, err)
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if r.tlsTr != nil {
		opts = append(opts, remote.WithTransport(r.tlsTr))
	}
	if r.User != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.User, Password: r.Password}))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("push %s: digest: %w", ref, err)
	}
	return name.NewDigest(r.Repo(repo)+"@"+h.String(), name.Insecure)
}

// PushSigned pushes a random image as HOST/repo:tag and signs its digest
// with key in layout using the cosign CLI.
func (r *Registry) PushSigned(ctx context.Context, c *Cosign, key KeyPair, layout Layout, repo, tag string) (name.Digest, error) {
	d, err := r.PushRandom(ctx, repo, tag)
	if err != nil {
		return name.Digest{}, err
	}
	if err := c.Sign(ctx, key, d, layout); err != nil {
		return name.Digest{}, err
	}
	return d, nil
}
