//go:build load

package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// counter is an http.Handler in front of the registry that counts requests
// by kind ("GET manifest", "HEAD manifest", "GET blob", "GET ping", ...).
type counter struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.n[r.Method+" "+requestKind(r.URL.Path)]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func requestKind(path string) string {
	switch {
	case path == "/v2/" || path == "/v2":
		return "ping"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.Contains(path, "/referrers/"):
		return "referrers"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	}
	return "other"
}

// snapshot returns the counts so far.
func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.n))
	for k, v := range c.n {
		m[k] = v
	}
	return m
}

// since returns the total and a sorted "kind=n" breakdown of the requests
// made after the snapshot before.
func (c *counter) since(before map[string]int) (int, string) {
	now := c.snapshot()
	var total int
	var parts []string
	for k, v := range now {
		if d := v - before[k]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%d", k, d))
		}
	}
	sort.Strings(parts)
	return total, strings.Join(parts, ", ")
}

// testRegistry is go-containerregistry's in-memory registry on a loopback
// port, with a request counter in front and a cosign key to sign with.
type testRegistry struct {
	Host   string // 127.0.0.1:port
	Count  *counter
	PubPEM []byte
	signer signature.SignerVerifier
	srv    *http.Server
}

func startRegistry() (*testRegistry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen registry: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate cosign key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("marshal cosign public key: %w", err)
	}
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load cosign signer: %w", err)
	}
	c := &counter{next: registry.New(registry.Logger(log.New(io.Discard, "", 0))), n: map[string]int{}}
	r := &testRegistry{
		Host:   l.Addr().String(),
		Count:  c,
		PubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		signer: sv,
		srv:    &http.Server{Handler: c},
	}
	go r.srv.Serve(l) //nolint:errcheck // ends with Close
	return r, nil
}

func (r *testRegistry) Close() error { return r.srv.Close() }

// pushSigned pushes a small random image as repo:tag and signs its digest
// with the run's key the way `cosign sign` does (classic .sig tag).
func (r *testRegistry) pushSigned(repo, tag string) (name.Digest, error) {
	d, err := r.pushImage(repo, tag)
	if err != nil {
		return name.Digest{}, err
	}
	return d, r.sign(d)
}

// pushImage pushes a small random image as repo:tag.
func (r *testRegistry) pushImage(repo, tag string) (name.Digest, error) {
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", r.Host, repo, tag), name.Insecure)
	if err != nil {
		return name.Digest{}, err
	}
	img, err := random.Image(512, 1)
	if err != nil {
		return name.Digest{}, fmt.Errorf("random image: %w", err)
	}
	if err := remote.Write(ref, img); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return ref.Context().Digest(h.String()), nil
}

func (r *testRegistry) sign(d name.Digest) error {
	body, err := payload.Cosign{Image: d}.MarshalJSON()
	if err != nil {
		return err
	}
	sig, err := r.signer.SignMessage(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sign %s: %w", d, err)
	}
	ociSig, err := static.NewSignature(body, base64.StdEncoding.EncodeToString(sig))
	if err != nil {
		return err
	}
	se, err := ociremote.SignedEntity(d)
	if err != nil {
		return fmt.Errorf("read %s: %w", d, err)
	}
	se, err = mutate.AttachSignatureToEntity(se, ociSig)
	if err != nil {
		return err
	}
	if err := ociremote.WriteSignatures(d.Repository, se); err != nil {
		return fmt.Errorf("write signature of %s: %w", d, err)
	}
	return nil
}
