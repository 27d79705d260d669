//go:build load

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profile takes a CPU profile and an allocation profile of a cached
// signgate server while it serves the 3-container pod at the fixed rate,
// and puts `go tool pprof -top` of both into the report. The profiles come
// from the /debug/pprof/ of the server's metrics port (startSigngate passes
// --profiling).
func profile(ctx context.Context, e *env, rep *report) error {
	srv := e.sg
	if !hasPprof(srv) {
		return fmt.Errorf("%s: no /debug/pprof/ on the metrics port %s (started without --profiling?)", srv.Name, srv.MetricsURL)
	}
	base := srv.MetricsURL + "/debug/pprof/"
	if err := os.MkdirAll(e.o.ProfileDir, 0o755); err != nil {
		return err
	}
	allocs0 := filepath.Join(e.o.ProfileDir, "allocs-before.pb.gz")
	allocs1 := filepath.Join(e.o.ProfileDir, "allocs-after.pb.gz")
	cpu := filepath.Join(e.o.ProfileDir, "cpu.pb.gz")
	bodies := reviews(64, e.pinned(3))
	sh := shape{Rate: e.o.Rate, Workers: e.o.Workers, Duration: e.o.Duration}
	// Warm up first (caches, connections, heap), so the profiles show the
	// steady state and not the first verification.
	if _, err := e.measure(ctx, srv, e.validateURL(srv), "3-container pod (warm-up)", bodies, sh); err != nil {
		return err
	}
	if err := fetch(ctx, base+"allocs", allocs0); err != nil {
		return err
	}
	secs := max(int(e.o.Duration/time.Second)-1, 1)
	cpuErr := make(chan error, 1)
	go func() { cpuErr <- fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", base, secs), cpu) }()
	w := e.o.Warmup
	e.o.Warmup = 0
	r, err := e.measure(ctx, srv, e.validateURL(srv), "3-container pod (profiled)", bodies, sh)
	e.o.Warmup = w
	if err != nil {
		return err
	}
	rep.add("profile", 0, r)
	if err := <-cpuErr; err != nil {
		return err
	}
	if err := fetch(ctx, base+"allocs", allocs1); err != nil {
		return err
	}
	rep.profileReviews = r.Reviews
	if rep.profileCPU, err = pprofTop(ctx, "-top", "-nodecount=30", cpu); err != nil {
		return err
	}
	if rep.profileAllocs, err = pprofTop(ctx, "-top", "-nodecount=30", "-sample_index=alloc_space", "-base", allocs0, allocs1); err != nil {
		return err
	}
	if rep.profileAllocObjects, err = pprofTop(ctx, "-top", "-nodecount=30", "-sample_index=alloc_objects", "-base", allocs0, allocs1); err != nil {
		return err
	}
	return nil
}

func hasPprof(s *server) bool {
	resp, err := http.Get(s.MetricsURL + "/debug/pprof/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func pprofTop(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
