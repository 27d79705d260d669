package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"
)

// clientCAReloader holds the CAs of --client-ca-file, re-reading the file
// when its modification time or size changes, so a rotated CA (a Secret or
// ConfigMap volume rewritten in place) applies to the next handshake
// without a restart. A bad file keeps the last good CAs. Safe for
// concurrent use.
type clientCAReloader struct {
	file string
	log  *slog.Logger

	mu       sync.Mutex
	pool     *x509.CertPool
	notAfter time.Time // the earliest NotAfter of pool's CAs
	stamp    string    // mtime and size of the file last read
}

// newClientCAReloader reads file once: a missing or unusable file is an
// error naming the flag, before any port is opened.
func newClientCAReloader(file string, log *slog.Logger) (*clientCAReloader, error) {
	c := &clientCAReloader{file: file, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// configure makes cfg require a client certificate and verify it against
// the current CAs on every handshake. The verification is VerifyConnection's
// rather than ClientAuth RequireAndVerifyClientCert with a fixed ClientCAs
// pool: a pool in the Config could only change by cloning the Config per
// handshake (GetConfigForClient), and that clone would lose the ALPN
// protocols net/http adds to its own copy (HTTP/2). VerifyConnection also
// runs on resumed sessions, so a session begun under a CA that has since
// been removed from the file is refused too.
func (c *clientCAReloader) configure(cfg *tls.Config) {
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.VerifyConnection = c.verify
}

// verify is tls.Config.VerifyConnection: the client's certificate must chain
// to a CA of the file as it is now (one stat per handshake, a read only
// when it changed) and be valid for client authentication.
func (c *clientCAReloader) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("verify client certificate: none presented")
	}
	if err := c.reload(); err != nil {
		c.log.Warn("client CA reload failed, keeping the previous CAs", "err", err)
	}
	c.mu.Lock()
	pool := c.pool
	c.mu.Unlock()
	opts := x509.VerifyOptions{
		Roots:         pool,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, cert := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(cert)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("verify client certificate %q: %w", cs.PeerCertificates[0].Subject, err)
	}
	return nil
}

// reload reads the file if it changed since the last attempt.
func (c *clientCAReloader) reload() error {
	fi, err := os.Stat(c.file)
	if err != nil {
		return fmt.Errorf("read --client-ca-file %s: %w", c.file, pathErrCause(err))
	}
	stamp := fmt.Sprintf("%d:%d", fi.ModTime().UnixNano(), fi.Size())
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp == c.stamp {
		return nil
	}
	c.stamp = stamp // a half-written file is retried when it changes again
	pool, notAfter, err := readClientCAs(c.file)
	if err != nil {
		return err
	}
	if c.pool != nil {
		c.log.Info("client CAs reloaded", "file", c.file)
	}
	c.pool, c.notAfter = pool, notAfter
	return nil
}

// expiry is the earliest NotAfter of the CAs loaded last.
func (c *clientCAReloader) expiry() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notAfter
}

// readClientCAs parses every CERTIFICATE block of file; at least one is
// required, and one that does not parse is an error rather than skipped.
// notAfter is the earliest of their NotAfter.
func readClientCAs(file string) (_ *x509.CertPool, notAfter time.Time, _ error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, notAfter, fmt.Errorf("read --client-ca-file %s: %w", file, pathErrCause(err))
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, notAfter, fmt.Errorf("parse --client-ca-file %s: certificate %d: %w", file, n+1, err)
		}
		pool.AddCert(cert)
		if n == 0 || cert.NotAfter.Before(notAfter) {
			notAfter = cert.NotAfter
		}
		n++
	}
	if n == 0 {
		return nil, notAfter, fmt.Errorf("--client-ca-file %s: no PEM certificates", file)
	}
	return pool, notAfter, nil
}

// pathErrCause drops the operation and path an *fs.PathError repeats
// when the message already names the file.
func pathErrCause(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}
