// Package tuftest is a real TUF repository for tests: metadata built and
// signed with go-tuf's metadata API, served over HTTP on 127.0.0.1 the way
// Sigstore's TUF CDN serves it, so sigstore-go's TUF client
// (github.com/sigstore/sigstore-go/pkg/tuf) accepts it unchanged.
//
// The repository distributes one target, TargetName (trusted_root.json).
// It uses consistent snapshots, like Sigstore's repository, and serves:
//
//	/<N>.root.json       every root version, 404 past the newest
//	/timestamp.json      the newest timestamp
//	/<N>.snapshot.json   every snapshot version
//	/<N>.targets.json    every targets version
//	/targets/<sha256 hex>.trusted_root.json   every published target
//
// A client starts from Root (root v1) and walks root versions up to the
// newest by requesting /<N+1>.root.json until a 404; it never requests
// /root.json. Anything else is 404. Old versions stay served, as on a
// real repository.
//
// The package needs no testing.TB: New returns a *Repo that the caller
// must Close.
package tuftest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TargetName is the name of the one target a Repo distributes.
const TargetName = "trusted_root.json"

// expiry is how long all metadata is valid: long enough that no test sees
// it expire.
const expiry = 30 * 24 * time.Hour

var topLevelRoles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// Repo is a TUF repository on 127.0.0.1 serving one target, TargetName.
// Its methods are safe for concurrent use, also while clients fetch.
type Repo struct {
	// URL is the mirror base URL, http://127.0.0.1:PORT, to give a TUF
	// client as its repository base URL (metadata at URL, targets at
	// URL/targets).
	URL string

	addr string // 127.0.0.1:PORT, kept across Stop/Start

	mu          sync.Mutex
	keys        map[string]ed25519.PrivateKey // role -> signing key
	root        *metadata.Metadata[metadata.RootType]
	targets     *metadata.Metadata[metadata.TargetsType]
	snapshot    *metadata.Metadata[metadata.SnapshotType]
	timestamp   *metadata.Metadata[metadata.TimestampType]
	initialRoot []byte
	files       map[string][]byte // URL path without leading "/" -> body
	content     []byte            // the newest target content, as signed
	targetPath  string            // files key of the newest target
	srv         *http.Server      // nil when stopped
	requests    int
	paths       []string // requested URL paths, in order
}

// New creates a repository whose target TargetName has content trustedRoot,
// and starts serving it on 127.0.0.1 at a free port. It generates an
// ed25519 key per top-level role and signs root, targets, snapshot and
// timestamp, all at version 1. The caller must Close the Repo.
func New(trustedRoot []byte) (*Repo, error) {
	r := &Repo{files: map[string][]byte{}}
	if err := r.newRoot(); err != nil {
		return nil, err
	}
	r.initialRoot = r.files["1.root.json"]
	// Version 0: publish bumps them to 1.
	r.targets = metadata.Targets(expires())
	r.targets.Signed.Version = 0
	r.snapshot = metadata.Snapshot(expires())
	r.snapshot.Signed.Version = 0
	r.timestamp = metadata.Timestamp(expires())
	r.timestamp.Signed.Version = 0
	if err := r.publish(trustedRoot); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tuftest: listening on 127.0.0.1: %w", err)
	}
	r.addr = ln.Addr().String()
	r.URL = "http://" + r.addr
	r.serve(ln)
	return r, nil
}

// Root returns root.json version 1: the trust anchor a client starts from
// (sigstore-go's tuf.Options.Root). It stays the same after
// RotateRootKeys; a client walks from it to the newest root.
func (r *Repo) Root() []byte {
	return r.initialRoot
}

// Publish makes trustedRoot the new content of target TargetName: new
// targets, snapshot and timestamp versions, signed with the current keys.
// A client refreshing afterwards gets the new content.
func (r *Repo) Publish(trustedRoot []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.publish(trustedRoot)
}

// RotateRootKeys publishes a new root version in which every top-level
// role (root, targets, snapshot, timestamp) has a fresh key, signed by
// both the old and the new root key as TUF requires, then re-signs
// targets, snapshot and timestamp (versions bumped, same target content)
// with the new keys. A client starting from Root must then walk to the
// new root to verify anything.
func (r *Repo) RotateRootKeys() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldRootKey := r.keys[metadata.ROOT]
	if err := r.newRoot(); err != nil {
		return err
	}
	// Re-sign the new root with the old root key too and re-serve it.
	if err := sign(r.root, oldRootKey); err != nil {
		return fmt.Errorf("tuftest: signing root v%d with the old root key: %w", r.root.Signed.Version, err)
	}
	if err := r.serveRoot(); err != nil {
		return err
	}
	return r.publish(r.content)
}

// TamperTarget replaces the bytes served for the current TargetName with
// data without touching any signed metadata, as an attacker controlling
// the mirror would. A client must then reject the target (length or hash
// mismatch). The next Publish or RotateRootKeys serves correct bytes again.
func (r *Repo) TamperTarget(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[r.targetPath] = append([]byte(nil), data...)
}

// Requests returns the number of HTTP requests the repository has
// received, whatever their outcome; useful to assert that a client did
// (or did not) refresh.
func (r *Repo) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Stop stops serving: connections to URL are refused until Start. Stopping
// a stopped Repo does nothing.
func (r *Repo) Stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Start serves again at the same address (URL does not change) after
// Stop. It fails if another process took the port meanwhile. Starting a
// serving Repo does nothing.
func (r *Repo) Start() error {
	r.mu.Lock()
	serving := r.srv != nil
	r.mu.Unlock()
	if serving {
		return nil
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("tuftest: listening again on %s: %w", r.addr, err)
	}
	r.serve(ln)
	return nil
}

// Close stops serving for good. It is the same as Stop and may be called
// more than once.
func (r *Repo) Close() {
	r.Stop()
}

// serve serves r on ln until Stop.
func (r *Repo) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 10 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *Repo) handle(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests++
	r.paths = append(r.paths, req.URL.Path)
	body, ok := r.files[strings.TrimPrefix(req.URL.Path, "/")]
	r.mu.Unlock()
	if !ok || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(body)
}

// newRoot generates a fresh key for every top-level role and makes a root
// (version 1, or one more than the current root) delegating to them,
// signed with the new root key and served as <N>.root.json. Callers hold
// r.mu or own r exclusively.
func (r *Repo) newRoot() error {
	version := int64(1)
	if r.root != nil {
		version = r.root.Signed.Version + 1
	}
	root := metadata.Root(expires())
	root.Signed.Version = version
	keys := map[string]ed25519.PrivateKey{}
	for _, role := range topLevelRoles {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("tuftest: generating %s key: %w", role, err)
		}
		key, err := metadata.KeyFromPublicKey(priv.Public())
		if err != nil {
			return fmt.Errorf("tuftest: converting %s key: %w", role, err)
		}
		if err := root.Signed.AddKey(key, role); err != nil {
			return fmt.Errorf("tuftest: adding %s key to root v%d: %w", role, version, err)
		}
		keys[role] = priv
	}
	if err := sign(root, keys[metadata.ROOT]); err != nil {
		return fmt.Errorf("tuftest: signing root v%d: %w", version, err)
	}
	r.root, r.keys = root, keys
	return r.serveRoot()
}

// serveRoot serves the current root as <N>.root.json.
func (r *Repo) serveRoot() error {
	b, err := r.root.ToBytes(true)
	if err != nil {
		return fmt.Errorf("tuftest: encoding root v%d: %w", r.root.Signed.Version, err)
	}
	r.files[fmt.Sprintf("%d.root.json", r.root.Signed.Version)] = b
	return nil
}

// publish sets the target content, bumps and re-signs targets, snapshot
// and timestamp, and serves them. Callers hold r.mu or own r exclusively.
func (r *Repo) publish(content []byte) error {
	content = append([]byte(nil), content...)
	tf, err := metadata.TargetFile().FromBytes(TargetName, content, "sha256")
	if err != nil {
		return fmt.Errorf("tuftest: hashing target %s: %w", TargetName, err)
	}
	t := r.targets
	t.Signed.Version++
	t.Signed.Expires = expires()
	t.Signed.Targets[TargetName] = tf
	targetsJSON, err := signEncode(t, r.keys[metadata.TARGETS])
	if err != nil {
		return err
	}

	s := r.snapshot
	s.Signed.Version++
	s.Signed.Expires = expires()
	s.Signed.Meta["targets.json"] = metadata.MetaFile(t.Signed.Version)
	snapshotJSON, err := signEncode(s, r.keys[metadata.SNAPSHOT])
	if err != nil {
		return err
	}

	ts := r.timestamp
	ts.Signed.Version++
	ts.Signed.Expires = expires()
	sum := sha256.Sum256(snapshotJSON)
	snapMeta := metadata.MetaFile(s.Signed.Version)
	snapMeta.Length = int64(len(snapshotJSON))
	snapMeta.Hashes = metadata.Hashes{"sha256": sum[:]}
	ts.Signed.Meta["snapshot.json"] = snapMeta
	timestampJSON, err := signEncode(ts, r.keys[metadata.TIMESTAMP])
	if err != nil {
		return err
	}

	r.content = content
	r.targetPath = "targets/" + hex.EncodeToString(tf.Hashes["sha256"]) + "." + TargetName
	r.files[r.targetPath] = content
	r.files[fmt.Sprintf("%d.targets.json", t.Signed.Version)] = targetsJSON
	r.files[fmt.Sprintf("%d.snapshot.json", s.Signed.Version)] = snapshotJSON
	r.files["timestamp.json"] = timestampJSON
	return nil
}

// signEncode replaces m's signatures by one with key and encodes m.
func signEncode[T metadata.Roles](m *metadata.Metadata[T], key ed25519.PrivateKey) ([]byte, error) {
	m.ClearSignatures()
	if err := sign(m, key); err != nil {
		return nil, fmt.Errorf("tuftest: signing %T: %w", m.Signed, err)
	}
	b, err := m.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("tuftest: encoding %T: %w", m.Signed, err)
	}
	return b, nil
}

// sign adds a signature by key to m.
func sign[T metadata.Roles](m *metadata.Metadata[T], key ed25519.PrivateKey) error {
	if key == nil {
		return errors.New("no key")
	}
	signer, err := signature.LoadED25519Signer(key)
	if err != nil {
		return err
	}
	_, err = m.Sign(signer)
	return err
}

func expires() time.Time {
	return time.Now().UTC().Add(expiry).Truncate(time.Second)
}
