//go:build e2e

package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

// Etcd is a single-member etcd on loopback with its data in a temp dir.
type Etcd struct {
	URL  string // client URL, http://127.0.0.1:PORT
	Proc *Process
}

// StartEtcd starts bin and waits until /health answers.
func StartEtcd(ctx context.Context, tb TB, bin, dir string) (*Etcd, error) {
	client, err := freeAddr()
	if err != nil {
		return nil, err
	}
	peer, err := freeAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "etcd-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	clientURL, peerURL := "http://"+client, "http://"+peer
	p, err := startProcess(tb, dir, procSpec{
		name: "etcd",
		bin:  bin,
		args: []string{
			"--name=e2e",
			"--data-dir=" + data,
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=e2e=" + peerURL,
			"--log-level=warn",
			// The data is thrown away: skip fsync, which on a shared disk
			// is most of etcd's latency.
			"--unsafe-no-fsync",
		},
	})
	if err != nil {
		return nil, err
	}
	e := &Etcd{URL: clientURL, Proc: p}
	err = p.waitReady(ctx, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, clientURL+"/health", "")
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// httpOK GETs url (with a bearer token when token is set) and wants 200.
func httpOK(ctx context.Context, c *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
