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

// profile takes a CPU profile and an allocation profile of the cached
// signgate server while it serves the 3-container pod at the fixed rate,
// from its /debug/pprof endpoints when serve exposes them on the metrics
// port, and puts `go tool pprof -top` of both into the report.
func profile(ctx context.Context, e *env, rep *report) error {
	base := e.sg.MetricsURL + "/debug/pprof/"
	if resp, err := http.Get(base); err != nil || resp.StatusCode != http.StatusOK {
		if err == nil {
			resp.Body.Close()
		}
		rep.profileNote = "signgate serve exposes no /debug/pprof on its metrics port; no server profile taken"
		logf("%s", rep.profileNote)
		return nil
	}
	if err := os.MkdirAll(e.o.ProfileDir, 0o755); err != nil {
		return err
	}
	allocs0 := filepath.Join(e.o.ProfileDir, "allocs-before.pb.gz")
	allocs1 := filepath.Join(e.o.ProfileDir, "allocs-after.pb.gz")
	cpu := filepath.Join(e.o.ProfileDir, "cpu.pb.gz")
	if err := fetch(ctx, base+"allocs", allocs0); err != nil {
		return err
	}
	secs := int(e.o.Duration/time.Second) - 1
	if secs < 1 {
		secs = 1
	}
	cpuErr := make(chan error, 1)
	go func() { cpuErr <- fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", base, secs), cpu) }()
	bodies := reviews(64, e.pinned(3))
	r, err := e.measure(ctx, e.sg, e.validateURL(e.sg), "3-container pod (profiled)", bodies,
		shape{Rate: e.o.Rate, Workers: e.o.Workers, Duration: e.o.Duration})
	if err != nil {
		return err
	}
	if err := <-cpuErr; err != nil {
		return err
	}
	if err := fetch(ctx, base+"allocs", allocs1); err != nil {
		return err
	}
	rep.profileReviews = r.Reviews
	if rep.profileCPU, err = pprofTop(ctx, "-top", "-nodecount=25", cpu); err != nil {
		return err
	}
	if rep.profileAllocs, err = pprofTop(ctx, "-top", "-nodecount=25", "-sample_index=alloc_space", "-base", allocs0, allocs1); err != nil {
		return err
	}
	if rep.profileAllocObjects, err = pprofTop(ctx, "-top", "-nodecount=25", "-sample_index=alloc_objects", "-base", allocs0, allocs1); err != nil {
		return err
	}
	return nil
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
