//go:build e2e

package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
)

// Layout is where cosign stores a signature.
type Layout string

const (
	// Classic is the sha256-<hex>.sig tag next to the image.
	Classic Layout = "classic"
	// Bundle is a Sigstore bundle attached through OCI referrers
	// (`--new-bundle-format`); on a registry without the referrers API it
	// lands under the fallback tag sha256-<hex>.
	Bundle Layout = "bundle"
)

// Cosign runs the real cosign CLI with a private HOME, no password and no
// transparency log: nothing it does leaves 127.0.0.1.
type Cosign struct {
	Bin  string
	home string

	once         sync.Once
	bundleFormat bool

	attestOnce         sync.Once
	attestBundleFormat bool
}

// NewCosign returns a Cosign whose HOME (and TUF cache) is under dir.
func NewCosign(bin, dir string) *Cosign {
	return &Cosign{Bin: bin, home: filepath.Join(dir, "cosign-home")}
}

// KeyPair is a cosign key pair made by `cosign generate-key-pair`.
type KeyPair struct {
	Name       string // for messages and policy authority names
	PrivateKey string // path of cosign.key (encrypted with the empty password)
	PublicKey  string // path of cosign.pub
	PublicPEM  []byte // contents of cosign.pub
}

// GenerateKeyPair runs `COSIGN_PASSWORD= cosign generate-key-pair` in a new
// directory dir/<name>.
func (c *Cosign) GenerateKeyPair(ctx context.Context, dir, name string) (KeyPair, error) {
	kd := filepath.Join(dir, "key-"+name)
	if err := os.MkdirAll(kd, 0o700); err != nil {
		return KeyPair{}, fmt.Errorf("generate key pair %s: %w", name, err)
	}
	if _, err := c.run(ctx, kd, "generate-key-pair"); err != nil {
		return KeyPair{}, fmt.Errorf("generate key pair %s: %w", name, err)
	}
	k := KeyPair{Name: name, PrivateKey: filepath.Join(kd, "cosign.key"), PublicKey: filepath.Join(kd, "cosign.pub")}
	pub, err := os.ReadFile(k.PublicKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key pair %s: %w", name, err)
	}
	k.PublicPEM = pub
	return k, nil
}

// SupportsBundle reports whether this cosign has `sign --new-bundle-format`.
func (c *Cosign) SupportsBundle(ctx context.Context) bool {
	c.once.Do(func() {
		// v3 hides the flag from --help (deprecated: the bundle is its
		// only future format) but accepts it; an unknown flag fails.
		_, err := c.run(ctx, "", "sign", "--new-bundle-format=true", "--help")
		c.bundleFormat = err == nil
	})
	return c.bundleFormat
}

// SupportsBundleAttest reports whether this cosign has
// `attest --new-bundle-format`.
func (c *Cosign) SupportsBundleAttest(ctx context.Context) bool {
	c.attestOnce.Do(func() {
		_, err := c.run(ctx, "", "attest", "--new-bundle-format=true", "--help")
		c.attestBundleFormat = err == nil
	})
	return c.attestBundleFormat
}

// Sign signs d with key in the given layout:
//
//	cosign sign --yes --key cosign.key --use-signing-config=false --tlog-upload=false --allow-http-registry --allow-insecure-registry --new-bundle-format[=false] d
func (c *Cosign) Sign(ctx context.Context, key KeyPair, d name.Digest, layout Layout) error {
	args, err := c.keyArgs(ctx, "sign", key, layout)
	if err != nil {
		return fmt.Errorf("sign %s: %w", d, err)
	}
	if _, err := c.run(ctx, "", append(args, d.String())...); err != nil {
		return fmt.Errorf("sign %s with %s (%s): %w", d, key.Name, layout, err)
	}
	return nil
}

// keyArgs are the arguments of `cosign sign|attest` with key, no
// transparency log and the layout, for cosign v2 and v3 alike: v3 signs
// through the public-good signing config unless told not to
// (--use-signing-config=false), and defaults to the bundle format.
func (c *Cosign) keyArgs(ctx context.Context, cmd string, key KeyPair, layout Layout) ([]string, error) {
	args := []string{cmd, "--yes", "--key", key.PrivateKey, "--use-signing-config=false", "--tlog-upload=false",
		"--allow-http-registry", "--allow-insecure-registry"}
	switch layout {
	case Classic:
		return append(args, "--new-bundle-format=false"), nil
	case Bundle:
		supported := c.SupportsBundle(ctx)
		if cmd == "attest" {
			supported = c.SupportsBundleAttest(ctx)
		}
		if !supported {
			return nil, fmt.Errorf("%s has no %s --new-bundle-format", c.Bin, cmd)
		}
		return append(args, "--new-bundle-format"), nil
	}
	return nil, fmt.Errorf("unknown layout %q", layout)
}

// Attest attaches an in-toto attestation, signed with key, of the
// predicate in file predicate to d, in the given layout: Classic, a layer
// of the sha256-<hex>.att tag next to the image; Bundle, a Sigstore bundle
// with a DSSE envelope attached as an OCI referrer (or under the fallback
// tag sha256-<hex>, next to a Bundle signature):
//
//	cosign attest --yes --key cosign.key --use-signing-config=false --tlog-upload=false --allow-http-registry --allow-insecure-registry --new-bundle-format[=false] --type predicateType --predicate predicate d
//
// predicateType is a URI or one of cosign's short names (slsaprovenance1,
// spdxjson, vuln, …). Attestations of one image must not be made
// concurrently: each attest rewrites that image's .att tag (or its
// referrers fallback tag).
func (c *Cosign) Attest(ctx context.Context, key KeyPair, d name.Digest, layout Layout, predicateType, predicate string) error {
	args, err := c.keyArgs(ctx, "attest", key, layout)
	if err != nil {
		return fmt.Errorf("attest %s: %w", d, err)
	}
	args = append(args, "--type", predicateType, "--predicate", predicate, d.String())
	if _, err := c.run(ctx, "", args...); err != nil {
		return fmt.Errorf("attest %s (%s, %s) with %s: %w", d, predicateType, layout, key.Name, err)
	}
	return nil
}

// Login stores user and password for host in this cosign's docker
// config (its private HOME), as `cosign login` does for a CI job:
//
//	cosign login host -u user -p password
func (c *Cosign) Login(ctx context.Context, host, user, password string) error {
	if _, err := c.run(ctx, "", "login", host, "-u", user, "-p", password); err != nil {
		return fmt.Errorf("cosign login %s: %w", host, err)
	}
	return nil
}

func (c *Cosign) run(ctx context.Context, dir string, args ...string) (string, error) {
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"COSIGN_PASSWORD=",
		"HOME="+c.home,
		"TUF_ROOT="+filepath.Join(c.home, "tuf"),
		"SIGSTORE_NO_CACHE=true",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cosign %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}
