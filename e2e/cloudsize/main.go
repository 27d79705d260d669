//go:build load

// Command cloudsize measures what each cloud credential provider
// (internal/cloudauth) adds to the signgate binary: its size, and the
// start-up time of the package initialisation it brings (paid at every
// start, whether the provider is enabled or not; constructing an enabled
// provider is BenchmarkNewProvider in internal/cloudauth). It builds
// ./cmd/signgate once per set of build tags, as `make build` does, and
// runs `signgate version` under GODEBUG=inittrace=1.
//
//	go run -tags load ./e2e/cloudsize [-runs 30] [-o report.txt]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// variant is one build: the providers it leaves out.
type variant struct {
	name string
	tags []string
}

var variants = []variant{
	{"no cloud provider", []string{"signgate_no_ecr", "signgate_no_google", "signgate_no_azure"}},
	{"ecr only", []string{"signgate_no_google", "signgate_no_azure"}},
	{"google only", []string{"signgate_no_ecr", "signgate_no_azure"}},
	{"azure only", []string{"signgate_no_ecr", "signgate_no_google"}},
	{"all three (default)", nil},
}

// initLine is a GODEBUG=inittrace=1 line: init <pkg> @<t> ms, <clock> ms clock, <bytes> bytes, <allocs> allocs.
var initLine = regexp.MustCompile(`^init (\S+) @\S+ ms, ([0-9.]+) ms clock, (\d+) bytes, (\d+) allocs`)

// cloudPackages are the import path prefixes of the providers' SDKs.
var cloudPackages = []string{"github.com/aws/", "github.com/Azure/", "github.com/AzureAD/", "golang.org/x/oauth2", "cloud.google.com/"}

type result struct {
	variant
	size       int64
	initMS     float64 // median over runs: every package's init
	initBytes  int64
	cloudMS    float64 // median over runs: the cloud SDKs' packages' init
	cloudBytes int64
	startMS    float64 // median wall time of `signgate version`
	pkgs       int     // packages with an init
}

func main() {
	runs := flag.Int("runs", 30, "starts measured per build")
	out := flag.String("o", "", "write the report to this file too")
	flag.Parse()
	dir, err := os.MkdirTemp("", "cloudsize")
	check(err)
	defer os.RemoveAll(dir)

	var results []result
	for _, v := range variants {
		bin := filepath.Join(dir, strings.ReplaceAll(v.name, " ", "-"))
		args := []string{"build", "-o", bin}
		if len(v.tags) > 0 {
			args = append(args, "-tags", strings.Join(v.tags, ","))
		}
		cmd := exec.Command("go", append(args, "./cmd/signgate")...)
		cmd.Stderr = os.Stderr
		check(cmd.Run())
		st, err := os.Stat(bin)
		check(err)
		r := result{variant: v, size: st.Size()}
		var inits, clouds, starts []float64
		for range *runs {
			t := start(bin)
			inits, clouds, starts = append(inits, t.ms), append(clouds, t.cloudMS), append(starts, t.wallMS)
			r.initBytes, r.cloudBytes, r.pkgs = t.bytes, t.cloudBytes, t.pkgs
		}
		r.initMS, r.cloudMS, r.startMS = median(inits), median(clouds), median(starts)
		results = append(results, r)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "signgate binary size and start-up by cloud credential provider\n")
	fmt.Fprintf(&b, "command: make cloud-size (go run -tags load ./e2e/cloudsize -runs %d)\n", *runs)
	fmt.Fprintf(&b, "go: %s %s/%s, %d CPUs; %s\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	base := results[0]
	fmt.Fprintf(&b, "%-20s %10s %8s %10s %10s %11s %11s %10s %6s\n", "build", "size MiB", "+size", "init ms", "init MiB", "cloud ms", "cloud KiB", "start ms", "inits")
	for _, r := range results {
		fmt.Fprintf(&b, "%-20s %10.1f %+7.1fM %10.2f %10.2f %11.2f %11.0f %10.2f %6d\n", r.name,
			mib(r.size), mib(r.size-base.size), r.initMS, mib(r.initBytes), r.cloudMS, float64(r.cloudBytes)/1024, r.startMS, r.pkgs)
	}
	fmt.Fprintf(&b, "\nsize: the binary as `make build` writes it (not stripped).\n")
	fmt.Fprintf(&b, "init: median over runs of the summed clock time and allocation of every package's init\n")
	fmt.Fprintf(&b, "(GODEBUG=inittrace=1 signgate version), paid at every start whether a provider is enabled or not.\n")
	fmt.Fprintf(&b, "cloud: the same for the cloud SDKs' packages alone (%s).\n", strings.Join(cloudPackages, ", "))
	fmt.Fprintf(&b, "start: median wall time of `signgate version` (process start to exit).\n")
	fmt.Fprintf(&b, "build tags: signgate_no_ecr, signgate_no_google, signgate_no_azure leave a provider out.\n")
	os.Stdout.Write(b.Bytes())
	if *out != "" {
		check(os.WriteFile(*out, b.Bytes(), 0o644))
	}
}

// trace is one start of the binary.
type trace struct {
	ms, cloudMS       float64
	bytes, cloudBytes int64
	pkgs              int
	wallMS            float64
}

// start runs bin version once under inittrace.
func start(bin string) trace {
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	stderr, err := cmd.StderrPipe()
	check(err)
	cmd.Stdout = io.Discard
	t0 := time.Now()
	check(cmd.Start())
	var t trace
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		m := initLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ms, _ := strconv.ParseFloat(m[2], 64)
		n, _ := strconv.ParseInt(m[3], 10, 64)
		t.ms += ms
		t.bytes += n
		t.pkgs++
		if slices.ContainsFunc(cloudPackages, func(p string) bool { return strings.HasPrefix(m[1], p) }) {
			t.cloudMS += ms
			t.cloudBytes += n
		}
	}
	check(cmd.Wait())
	t.wallMS = float64(time.Since(t0).Microseconds()) / 1000
	return t
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "cloudsize:", err)
		os.Exit(1)
	}
}
