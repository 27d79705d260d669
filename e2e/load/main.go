//go:build load

// Command load measures signgate's admission webhooks under load, side by
// side with Pod Security Admission's own webhook, in one run on one
// machine. It starts everything on 127.0.0.1: an in-memory OCI registry
// holding images signed by this program, `bin/signgate serve` reading its
// policies from a temp directory, and `bin/pod-security-webhook` reading
// Namespaces from a minimal stand-in for the API server. It drives them
// over HTTPS keep-alive with vegeta (as a library) using recorded
// AdmissionReviews, and prints a Markdown report: throughput, latency
// percentiles, server CPU per review (from /proc/<pid>/stat) and peak RSS
// (VmHWM).
//
//	go run -tags load ./e2e/load [-duration 10s] [-workers 32] [-o report.md]
//
// With -oversized it instead measures the peak RSS of `bin/signgate serve`
// reviewing pods whose images have huge signature data (oversized.go):
//
//	go run -tags load ./e2e/load -oversized [-oversized-rounds 3] [-o report.md]
//
// Every request loop is bounded in count and time; nothing leaves loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	SigngateBin string
	PSABin      string
	Workers     int
	Duration    time.Duration
	Warmup      time.Duration
	Rate        int
	Rounds      int
	ColdTrials  int
	ScaleUp     int
	Sections    string
	Out         string
	ProfileDir  string
	KeepTemp    bool
	TraceDir    string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == inprocCommand {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := serveInProcess(ctx, os.Args[2:])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.SigngateBin, "signgate", "bin/signgate", "signgate binary, or "+inprocCommand+" for this program running internal/server itself")
	flag.StringVar(&o.PSABin, "psa", "bin/pod-security-webhook", "PSA webhook binary (make e2e-tools)")
	flag.IntVar(&o.Workers, "workers", 32, "vegeta workers (= keep-alive connections) for saturation runs")
	flag.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each measured attack")
	flag.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured attack before each measured one")
	flag.IntVar(&o.Rate, "rate", 1000, "fixed rate (reviews/s) for the latency and CPU comparison")
	flag.IntVar(&o.Rounds, "rounds", 1, "repeat the PSA comparison, alternating which server goes first")
	flag.IntVar(&o.ColdTrials, "cold-trials", 15, "cold-review trials (fresh images each)")
	flag.IntVar(&o.ScaleUp, "scaleup", 1000, "concurrent pod reviews in the scale-up")
	flag.StringVar(&o.Sections, "sections", "compare,mutate,nocache,cold,scaleup,profile", "comma-separated sections to run")
	flag.StringVar(&o.Out, "o", "", "also write the report to this file")
	flag.StringVar(&o.ProfileDir, "profile-dir", "bin/load-profiles", "where the profile section writes pprof files")
	flag.BoolVar(&o.KeepTemp, "keep", false, "keep the temp directory (logs, configs)")
	flag.StringVar(&o.TraceDir, "trace-dir", "", "write per-request offsets and latencies of each measured attack here")
	oversized := flag.Bool("oversized", false, "instead of the sections: the oversized-signature-data measurement (peak RSS of bin/signgate serve; make load-oversized)")
	var oo oversizedOptions
	oo.addFlags(flag.CommandLine)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if *oversized {
		err = runOversized(ctx, o, oo, os.Stdout)
	} else {
		err = run(ctx, o, os.Stdout)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	if o.SigngateBin != inprocCommand {
		if _, err := os.Stat(o.SigngateBin); err != nil {
			return fmt.Errorf("%s missing: run make build first", o.SigngateBin)
		}
	}
	dir, err := os.MkdirTemp("", "signgate-load-")
	if err != nil {
		return err
	}
	if o.KeepTemp {
		fmt.Fprintln(os.Stderr, "temp dir:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	rep := &report{opts: o, start: time.Now(), loadBefore: loadAvg()}
	e, err := setup(ctx, o, dir)
	if err != nil {
		return err
	}
	defer e.Close()

	sections := map[string]func(context.Context, *env, *report) error{
		"compare": compare,
		"fixed":   compareFixed,
		"mutate":  mutateCached,
		"nocache": noCache,
		"cold":    cold,
		"scaleup": scaleUp,
		"profile": profile,
	}
	for _, s := range strings.Split(o.Sections, ",") {
		f, ok := sections[strings.TrimSpace(s)]
		if !ok {
			return fmt.Errorf("unknown section %q", s)
		}
		logf("== %s (load %s)", s, loadAvg())
		if err := f(ctx, e, rep); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	rep.memory = e.memory()
	rep.loadAfter = loadAvg()
	rep.end = time.Now()

	return writeReport(stdout, o.Out, rep.write)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

var errNotAllowed = errors.New("server did not admit the recorded pod")

// writeReport writes a report to stdout and, when path is set, to that
// file too.
func writeReport(stdout io.Writer, path string, write func(io.Writer) error) error {
	out := []io.Writer{stdout}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		out = append(out, f)
	}
	return write(io.MultiWriter(out...))
}
