package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const watchedConfig = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nunmatchedImages: %s\n"

func writeConfig(t *testing.T, file, content string) {
	t.Helper()
	// Write and rename, as a ConfigMap volume swaps its files atomically.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// reloads records what OnReload reported.
type reloads struct {
	mu   sync.Mutex
	errs []error
	ch   chan struct{}
}

func (r *reloads) onReload(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *reloads) results() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, err := range r.errs {
		if err == nil {
			out = append(out, "ok")
		} else {
			out = append(out, "error")
		}
	}
	return out
}

func TestConfigWatcherReload(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, file, strings.ReplaceAll(watchedConfig, "%s", "warn"))
	rec := &reloads{ch: make(chan struct{}, 1)}
	w, err := NewConfigWatcher(file, ConfigWatcherOptions{OnReload: rec.onReload})
	if err != nil {
		t.Fatal(err)
	}
	first := w.Current()
	if first.UnmatchedImages != UnmatchedWarn {
		t.Fatalf("initial UnmatchedImages = %q, want warn", first.UnmatchedImages)
	}

	if err := w.Reload(); err != nil || len(rec.results()) != 0 {
		t.Fatalf("Reload() of an unchanged file = %v, reports %v; want nil and no report", err, rec.results())
	}

	writeConfig(t, file, strings.ReplaceAll(watchedConfig, "%s", "sometimes"))
	err = w.Reload()
	if err == nil || !strings.Contains(err.Error(), `line 3: unmatchedImages: must be one of deny, warn, allow (got "sometimes")`) {
		t.Fatalf("Reload() of a bad file = %v, want the validation error with its line", err)
	}
	if w.Current() != first {
		t.Fatal("a bad reload replaced the configuration")
	}
	if err := w.Reload(); err != nil {
		t.Fatalf("Reload() of the same bad file again = %v, want nil (reported once)", err)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err == nil || w.Current() != first {
		t.Fatalf("Reload() of a missing file = %v, want an error and the last good configuration", err)
	}

	writeConfig(t, file, strings.ReplaceAll(watchedConfig, "%s", "allow"))
	if err := w.Reload(); err != nil {
		t.Fatalf("Reload() of a good file: %v", err)
	}
	if got := w.Current().UnmatchedImages; got != UnmatchedAllow {
		t.Errorf("after reload UnmatchedImages = %q, want allow", got)
	}
	if got, want := strings.Join(rec.results(), ","), "error,error,ok"; got != want {
		t.Errorf("OnReload reports = %s, want %s", got, want)
	}
}

func TestConfigWatcherRun(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, file, strings.ReplaceAll(watchedConfig, "%s", "deny"))
	rec := &reloads{ch: make(chan struct{}, 1)}
	w, err := NewConfigWatcher(file, ConfigWatcherOptions{Interval: 5 * time.Millisecond, OnReload: rec.onReload})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	writeConfig(t, file, strings.ReplaceAll(watchedConfig, "%s", "warn"))
	select {
	case <-rec.ch:
	case <-time.After(hangGuard):
		t.Fatalf("no reload within %s", hangGuard)
	}
	if got := w.Current().UnmatchedImages; got != UnmatchedWarn {
		t.Errorf("UnmatchedImages = %q after reload, want warn", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil after cancel", err)
	}
}

func TestNewConfigWatcherErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeConfig(t, bad, "apiVersion: v1\nkind: GateConfiguration\n")
	tests := []struct {
		name, file, want string
	}{
		{name: "missing", file: filepath.Join(dir, "nope.yaml"), want: "load config: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"},
		{name: "invalid", file: bad, want: "load config " + bad + `: parse GateConfiguration: line 1: apiVersion: must be signgate.dev/v1alpha1 (got "v1")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewConfigWatcher(tt.file, ConfigWatcherOptions{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("NewConfigWatcher() error = %v, want %s", err, tt.want)
			}
		})
	}
}
