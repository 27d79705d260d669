package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate from files, re-reading them when
// their modification time or size changes (cert-manager and kubelet
// rewrite Secret volumes in place). A bad pair keeps the last good one.
// Safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp string // mtimes and sizes of the files last read
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate: one stat per file per
// handshake, a read only when they changed.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if err := c.reload(); err != nil {
		c.log.Warn("TLS certificate reload failed, keeping the previous one", "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil {
		return nil, errors.New("no TLS certificate loaded")
	}
	return c.cert, nil
}

// notAfter is the expiry of the certificate loaded last; zero when none.
func (c *certReloader) notAfter() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil || c.cert.Leaf == nil {
		return time.Time{}
	}
	return c.cert.Leaf.NotAfter
}

func (c *certReloader) loaded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert != nil
}

// reload reads the pair if the files changed since the last attempt.
func (c *certReloader) reload() error {
	stamp, err := fileStamp(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp == c.stamp {
		return nil
	}
	c.stamp = stamp // a half-written pair is retried when the next file changes
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if c.cert != nil {
		c.log.Info("TLS certificate reloaded", "file", c.certFile)
	}
	c.cert = &cert
	return nil
}

func fileStamp(files ...string) (string, error) {
	stamp := ""
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("stat TLS file: %w", err)
		}
		stamp += fmt.Sprintf("%s:%d:%d;", f, fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}
