package policy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/signgate/signgate/policy/v1alpha1"
)

// FileOptions are the optional settings of a FileSource.
type FileOptions struct {
	// Interval is how often the directory is polled for changes.
	// Default 1s.
	Interval time.Duration
	// GateNamespace is where the Secrets of ClusterImagePolicy secretRefs,
	// and the ConfigMaps and Secrets of TrustRoots, live. Default
	// "signgate-system".
	GateNamespace string
	// NamespaceLabels adds labels to namespaces (name → labels), over the
	// labels of Namespace objects in the directory; signgate check uses it
	// for --namespace-labels. Default none.
	NamespaceLabels map[string]map[string]string
	// TrustRoots adds TrustRoots (name → trusted_root.json) to those of
	// the directory, as if inline; signgate check uses it for
	// --trusted-root. A name the directory defines too is an error.
	// Default none.
	TrustRoots map[string][]byte
	// Logger receives reload errors and invalid policies. Default: discard.
	Logger *slog.Logger
	// OnCompile, when set, is called with the Summary of each new view,
	// after it is in place (Snapshot returns it): from NewFileSource for
	// the first, then from Reload when the directory changed. Calls do
	// not overlap.
	OnCompile func(Summary)
}

// FileSource serves trust policies from a directory of YAML files
// (--policy-dir): ClusterImagePolicy, ImagePolicy, TrustRoot, Namespace,
// Secret and ConfigMap objects, several per file, in files named *.yaml, *.yml or *.json (not
// hidden, not in subdirectories; symlinks are followed, so a mounted
// ConfigMap works).
//
// A namespace that no file defines exists, with only the label
// kubernetes.io/metadata.name (plus FileOptions.NamespaceLabels): offline
// checks need no Namespace objects.
//
// Run polls the directory and swaps in a new compiled view when the content
// changed. A directory that no longer loads keeps the last good view and
// reports the error (log and LastError). Safe for concurrent use.
type FileSource struct {
	dir  string
	opts FileOptions
	log  *slog.Logger

	mu       sync.Mutex // serializes reloads; guards comp, sum and lastLog
	comp     compiler
	sum      [sha256.Size]byte
	lastLog  string
	cur      atomic.Pointer[fileView]
	errValue atomic.Value // error wrapper of the last reload; nil error when fine
}

type fileView struct {
	snap    *snapshot
	invalid []*InvalidPolicyError
}

type errBox struct{ err error }

// NewFileSource loads dir once; it fails if dir cannot be read or a document
// cannot be decoded. Call Run to follow changes.
//
// An empty dir is a source without files: no policies, and every
// namespace with its name label plus FileOptions.NamespaceLabels (signgate
// check without --policy-dir).
func NewFileSource(dir string, opts FileOptions) (*FileSource, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.GateNamespace == "" {
		opts.GateNamespace = "signgate-system"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &FileSource{dir: dir, opts: opts, log: opts.Logger}
	s.comp.gateNamespace = opts.GateNamespace
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Snapshot returns the current compiled view.
func (s *FileSource) Snapshot() Snapshot { return s.cur.Load().snap }

// Ready is true: a FileSource exists only once it has loaded.
func (s *FileSource) Ready() bool { return s.cur.Load() != nil }

// InvalidPolicies lists the policies of the current view that did not
// compile (their images are denied), sorted by policy.
func (s *FileSource) InvalidPolicies() []*InvalidPolicyError { return s.cur.Load().invalid }

// Summary describes the current view: policies by state, the registry
// hosts their globs name.
func (s *FileSource) Summary() Summary { return s.cur.Load().snap.trust.summary }

// LastError is the error of the last reload, nil when it succeeded.
func (s *FileSource) LastError() error {
	b, _ := s.errValue.Load().(errBox)
	return b.err
}

// Run polls the directory every Interval until ctx is done.
func (s *FileSource) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reload() //nolint:errcheck // Reload logs and records its error
		}
	}
}

// Reload reads the directory and, when its content changed, compiles and
// swaps in a new view. On error the previous view stays.
func (s *FileSource) Reload() (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed, err = s.reload()
	s.errValue.Store(errBox{err})
	if err != nil && err.Error() != s.lastLog {
		s.log.Error("policy directory not reloaded, keeping the last good policies", "dir", s.dir, "err", err)
	}
	s.lastLog = ""
	if err != nil {
		s.lastLog = err.Error()
	}
	return changed, err
}

func (s *FileSource) reload() (bool, error) {
	files, sum, err := readDir(s.dir)
	if err != nil {
		return false, err
	}
	if s.cur.Load() != nil && sum == s.sum {
		return false, nil
	}
	objs := newObjects()
	for _, f := range files {
		if err := decodeObjects(objs, f.name, f.data); err != nil {
			return false, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.opts.TrustRoots)) {
		if _, dup := objs.trustRoots[name]; dup {
			return false, fmt.Errorf("TrustRoot %q is defined in %s and given again", name, s.dir)
		}
		objs.trustRoots[name] = &trustRootObject{Name: name, Spec: v1alpha1.TrustRootSpec{TrustedRoot: &v1alpha1.TrustedRootSource{Inline: string(s.opts.TrustRoots[name])}}}
	}
	s.comp.secrets = func(ns, name string) (map[string][]byte, error) {
		if d, ok := objs.secrets[ns][name]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("not found in %s", s.dir)
	}
	s.comp.configMaps = func(ns, name string) (map[string][]byte, error) {
		if d, ok := objs.configMaps[ns][name]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("not found in %s", s.dir)
	}
	s.comp.trustRootObjs = objs.trustRoots
	trust, results := s.comp.compile(objs.policies)
	s.comp.secrets, s.comp.configMaps, s.comp.trustRootObjs = nil, nil, nil
	view := &fileView{snap: &snapshot{trust: trust, namespace: s.namespaceLookup(objs.namespaces)}}
	for _, r := range results {
		if r.Err != nil {
			view.invalid = append(view.invalid, r.Err)
			s.log.Error("invalid policy: its images are denied", "policy", r.Err.Policy, "err", r.Err)
		}
	}
	slices.SortFunc(view.invalid, func(a, b *InvalidPolicyError) int { return strings.Compare(a.Policy, b.Policy) })
	s.sum = sum
	s.cur.Store(view)
	if s.opts.OnCompile != nil {
		s.opts.OnCompile(trust.summary)
	}
	s.log.Info("policy directory loaded", "dir", s.dir, "policies", len(objs.policies), "invalid", len(view.invalid))
	return true, nil
}

// namespaceLookup answers Namespace for the files' namespaces plus the
// configured extra labels; unknown namespaces exist with only their name
// label.
func (s *FileSource) namespaceLookup(fromFiles map[string]map[string]string) func(string) (map[string]string, error) {
	all := make(map[string]map[string]string, len(fromFiles)+len(s.opts.NamespaceLabels))
	for name, l := range fromFiles {
		all[name] = l
	}
	for name, extra := range s.opts.NamespaceLabels {
		l := maps.Clone(all[name])
		if l == nil {
			l = map[string]string{corev1.LabelMetadataName: name}
		}
		maps.Copy(l, extra)
		all[name] = l
	}
	return func(name string) (map[string]string, error) {
		if l, ok := all[name]; ok {
			return l, nil
		}
		return map[string]string{corev1.LabelMetadataName: name}, nil
	}
}

type file struct {
	name string
	data []byte
}

// readDir reads the policy files of dir in name order and hashes names and
// contents, so a rewrite within the same second is still seen.
func readDir(dir string) ([]file, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if dir == "" { // no directory: no files (NewFileSource)
		return nil, sum, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, sum, fmt.Errorf("read policy directory: %w", err)
	}
	h := sha256.New()
	var files []file
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !isPolicyFile(name) {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, sum, fmt.Errorf("read policy file: %w", err)
		}
		if fi.IsDir() {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, sum, fmt.Errorf("read policy file: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
		files = append(files, file{name: path, data: data})
	}
	h.Sum(sum[:0])
	return files, sum, nil
}

func isPolicyFile(name string) bool {
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
