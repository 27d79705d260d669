// Package tufroot fetches a sigstore trusted_root.json from a TUF
// repository (as Sigstore distributes its public-good trust root) with
// sigstore-go's TUF client: the repository's metadata is verified from an
// initial root.json, following root rotations, before the target is
// returned. Nothing is cached on disk; every Fetch starts from the given
// root, so a refresh needs no writable file system.
package tufroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Target is the name under which Sigstore's TUF repositories publish the
// trusted root.
const Target = "trusted_root.json"

// Fetcher fetches trusted roots over HTTP.
type Fetcher struct {
	// Client makes the requests; nil is a client without proxies from
	// the environment and with Timeout.
	Client *http.Client
	// Timeout bounds one Fetch (all its requests); 0 is 30s.
	Timeout time.Duration
}

// Fetch returns the trusted_root.json target of the TUF repository at
// mirror, verified from root (an initial root.json, the trust anchor).
// The error says which step failed: the root, the repository's metadata
// (expired, badly signed, unreachable) or the target.
func (f *Fetcher) Fetch(ctx context.Context, mirror string, root []byte) ([]byte, error) {
	u, err := url.Parse(mirror)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("TUF mirror %q: want an http or https URL", mirror)
	}
	if len(root) == 0 {
		return nil, errNoRoot
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := f.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: timeout}
	}
	// DisableLocalCache stops writes only: go-tuf still reads metadata
	// under the cache path. A path that never exists makes every fetch
	// start from root alone, whatever an earlier process left on disk.
	noCache := filepath.Join(os.TempDir(), "signgate-tuf-no-cache", strconv.FormatInt(rand.Int64(), 36))
	opts := tuf.DefaultOptions().
		WithRoot(root).
		WithRepositoryBaseURL(mirror).
		WithCachePath(noCache).
		WithDisableLocalCache().
		WithContext(ctx).
		WithFetcher(&fetcher{ctx: ctx, client: client})
	c, err := tuf.New(opts)
	if err != nil {
		return nil, fmt.Errorf("TUF repository %s: %w", mirror, err)
	}
	data, err := c.GetTarget(Target)
	if err != nil {
		return nil, fmt.Errorf("TUF repository %s: target %s: %w", mirror, Target, err)
	}
	return data, nil
}

// fetcher is go-tuf's metadata fetcher on ctx, without retries (the
// caller refreshes again later): at most maxLength bytes per file; a
// non-200 answer is metadata.ErrDownloadHTTP, which go-tuf needs to see
// for a 404 (no newer root version).
type fetcher struct {
	ctx    context.Context
	client *http.Client
}

func (f *fetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, urlPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "signgate")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: urlPath}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: %d bytes, more than the %d expected", urlPath, resp.ContentLength, maxLength)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than the %d bytes expected", urlPath, maxLength)}
	}
	return data, nil
}

// errNoRoot is returned for an empty initial root.
var errNoRoot = errors.New("no initial root.json")
