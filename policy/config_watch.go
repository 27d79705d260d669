package policy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ConfigWatcherOptions are the optional settings of a ConfigWatcher.
type ConfigWatcherOptions struct {
	// Interval is how often Run reads the file to look for a change.
	// Default 1s, so a change is served within 2s. Polling the content (not inotify) also sees the symlink
	// swap a ConfigMap volume does on update.
	Interval time.Duration
	// OnReload, when set, is called after each attempt to load changed
	// content: with nil when the new configuration is in use, with the error
	// when it was rejected and the last good configuration stays. The same
	// bad content is reported once, not on every poll. cmd uses it to log
	// and count signgate_config_reloads_total{result}. Called from the
	// goroutine that runs Run or Reload; it must not block for long.
	OnReload func(err error)
}

// ConfigWatcher holds the current gate configuration loaded from a file and
// reloads it when the file changes. A bad reload keeps the last good
// configuration. Safe for concurrent use; Current is a lock-free read.
type ConfigWatcher struct {
	path string
	opts ConfigWatcherOptions

	current atomic.Pointer[Config]

	mu   sync.Mutex // serializes reloads
	seen [sha256.Size]byte
}

// NewConfigWatcher loads the configuration at path. A missing or invalid
// file is an error: the gate must not start on a configuration it cannot
// read (exit 2).
func NewConfigWatcher(path string, opts ConfigWatcherOptions) (*ConfigWatcher, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	w := &ConfigWatcher{path: path, opts: opts}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	w.current.Store(c)
	w.seen = sha256.Sum256(data)
	return w, nil
}

// Current returns the configuration in use. The returned Config must not be
// modified.
func (w *ConfigWatcher) Current() *Config {
	return w.current.Load()
}

// Run polls the file every Interval and reloads it when its content
// changes, until ctx is done. It returns nil when ctx is done.
func (w *ConfigWatcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = w.Reload() // reported through OnReload
		}
	}
}

// Reload reads the file now and, if its content changed since the last
// attempt, loads it. It returns the error of a rejected file (the last good
// configuration stays) and nil when the file loaded or did not change.
// Use it for SIGHUP; Run calls it on every tick.
func (w *ConfigWatcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed, err := w.reload()
	if !changed {
		return nil
	}
	if w.opts.OnReload != nil {
		w.opts.OnReload(err)
	}
	return err
}

// reload loads the file if its content differs from the last attempt;
// changed is false when there was nothing new to report.
func (w *ConfigWatcher) reload() (changed bool, err error) {
	data, err := os.ReadFile(w.path)
	if err != nil {
		// Remember the failure as if it were content, so it is reported
		// once and the file coming back (even unchanged) reloads.
		sum := sha256.Sum256([]byte("read error: " + err.Error()))
		if sum == w.seen {
			return false, nil
		}
		w.seen = sum
		return true, fmt.Errorf("reload config, keeping the last good one: %w", err)
	}
	sum := sha256.Sum256(data)
	if sum == w.seen {
		return false, nil
	}
	w.seen = sum
	c, err := ParseConfig(data)
	if err != nil {
		return true, fmt.Errorf("reload config %s, keeping the last good one: %w", w.path, err)
	}
	w.current.Store(c)
	return true, nil
}
