//go:build load

package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report collects a run's measurements and writes them as Markdown.
type report struct {
	opts                  options
	start, end            time.Time
	loadBefore, loadAfter string
	rows                  []row
	cold                  []coldTrial
	scaleUp               []scaleUpResult
	memory                []memInfo

	profileReviews      uint64
	profileCPU          string
	profileAllocs       string
	profileAllocObjects string
}

type row struct {
	Section string
	Round   int
	result
}

func (r *report) add(section string, round int, res result) {
	r.rows = append(r.rows, row{Section: section, Round: round, result: res})
}

func (r *report) find(section string, round int, server, workload string, saturation bool) (result, bool) {
	for _, x := range r.rows {
		if x.Section == section && x.Round == round && x.Server == server && x.Workload == workload && (x.Shape.Rate == 0) == saturation {
			return x.result, true
		}
	}
	return result{}, false
}

func (r *report) write(w io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("## Run of %s", r.start.UTC().Format("2006-01-02 15:04 MST"))
	p("")
	p("- machine: %d CPUs (%s), %s, Go %s", runtime.NumCPU(), cpuModel(), runtime.GOOS+"/"+runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"))
	p("- load average (1/5/15 min) before: %s, after: %s; run took %s", r.loadBefore, r.loadAfter, r.end.Sub(r.start).Round(time.Second))
	p("- command: `go run -tags load ./e2e/load %s`", strings.Join(os.Args[1:], " "))
	p("- generator: vegeta v12.13.0 as a library, HTTPS/1.1 keep-alive, %d workers for saturation; each measured attack %s after a %s warm-up", r.opts.Workers, r.opts.Duration, r.opts.Warmup)
	p("")
	r.writeCompare(p)
	r.writeRows(p, "mutate", "Mutating webhook, tags cached")
	r.writeNoCache(p)
	r.writeCold(p)
	r.writeScaleUp(p)
	r.writeMemory(p)
	r.writeRows(p, "profile", "Profiled server")
	r.writeProfile(p)
	return nil
}

func (r *report) writeRows(p func(string, ...any), section, title string) {
	var rows []row
	for _, x := range r.rows {
		if x.Section == section {
			rows = append(rows, x)
		}
	}
	if len(rows) == 0 {
		return
	}
	p("### %s", title)
	p("")
	p("| round | server | workload | load | reviews | throughput (r/s) | p50 | p99 | p99.9 | server CPU / review | admitted | failed |")
	p("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, x := range rows {
		p("| %d | %s | %s | %s | %d | %.0f | %s | %s | %s | %s | %d | %d |", x.Round+1, x.Server, x.Workload, x.Shape,
			x.Reviews, x.Throughput, ms(x.P50), ms(x.P99), ms(x.P999), ms(x.CPUPerReview()), x.Allowed, x.failed())
	}
	p("")
}

func (r *report) writeCompare(p func(string, ...any)) {
	r.writeRows(p, "compare", "signgate (signatures cached + Pod Security restricted + hardening) vs PSA's webhook, same reviews")
	var sat, satCPU [3][]float64
	var p99, cpu []float64
	var p99s [][2]time.Duration
	var cpus [][2]time.Duration
	for round := range r.opts.Rounds {
		for i, n := range []int{1, 3, 10} {
			wl := fmt.Sprintf("%d-container pod", n)
			a, ok1 := r.find("compare", round, "signgate", wl, true)
			b, ok2 := r.find("compare", round, "pod-security-webhook", wl, true)
			if ok1 && ok2 && b.Throughput > 0 && b.CPUPerReview() > 0 {
				sat[i] = append(sat[i], a.Throughput/b.Throughput)
				satCPU[i] = append(satCPU[i], float64(a.CPUPerReview())/float64(b.CPUPerReview()))
			}
		}
		a, ok1 := r.find("compare", round, "signgate", "3-container pod", false)
		b, ok2 := r.find("compare", round, "pod-security-webhook", "3-container pod", false)
		if ok1 && ok2 && b.P99 > 0 && b.CPUPerReview() > 0 {
			p99 = append(p99, float64(a.P99)/float64(b.P99))
			cpu = append(cpu, float64(a.CPUPerReview())/float64(b.CPUPerReview()))
			p99s = append(p99s, [2]time.Duration{a.P99, b.P99})
			cpus = append(cpus, [2]time.Duration{a.CPUPerReview(), b.CPUPerReview()})
		}
	}
	if len(p99) == 0 {
		return
	}
	p("### Ratios signgate / PSA (median over %d round(s))", r.opts.Rounds)
	p("")
	p("| measure | ratio | per round | target | met |")
	p("|---|---:|---|---|---|")
	for i, n := range []int{1, 3, 10} {
		p("| saturation throughput, %d-container pod | %.2f× | %s | ≥ 1.0× | %s |", n, median(sat[i]), ratios(sat[i]), met(median(sat[i]) >= 1.0))
	}
	p("| p99 at %d r/s, 3-container pod | %.2f× | %s | ≤ 1.0× | %s |", r.opts.Rate, median(p99), pairs(p99s), met(median(p99) <= 1.0))
	p("| server CPU per review at %d r/s, 3-container pod | %.2f× | %s | ≤ 0.8× | %s |", r.opts.Rate, median(cpu), pairs(cpus), met(median(cpu) <= 0.8))
	for i, n := range []int{1, 3, 10} {
		p("| server CPU per review at saturation, %d-container pod | %.2f× | %s | (no target) | |", n, median(satCPU[i]), ratios(satCPU[i]))
	}
	p("")
}

func (r *report) writeNoCache(p func(string, ...any)) {
	r.writeRows(p, "nocache", "Verdict cache on vs off (3-container pod, saturation)")
	a, ok1 := r.find("nocache", 0, "signgate", "3-container pod, 192 images", true)
	b, ok2 := r.find("nocache", 0, "signgate-nocache", "3-container pod, 192 images", true)
	if !ok1 || !ok2 || b.Throughput == 0 {
		return
	}
	perImage := float64(b.Registry) / float64(max(b.Reviews, 1)) / 3
	p("Cached / uncached: **%.1f× the throughput**, %.1f× less server CPU per review (%s vs %s). Registry requests during the measured attack: %d cached, %d uncached, i.e. %.1f per image verified; with one tag resolution per pod on top, a %d-pod scale-up through a cacheless gate costs about %.0f.",
		a.Throughput/b.Throughput, float64(b.CPUPerReview())/float64(a.CPUPerReview()), ms(a.CPUPerReview()), ms(b.CPUPerReview()),
		a.Registry, b.Registry, perImage, r.opts.ScaleUp, (perImage+1)*float64(r.opts.ScaleUp))
	p("")
}

func (r *report) writeCold(p func(string, ...any)) {
	if len(r.cold) == 0 {
		return
	}
	var single, slowest, sum, triple, warm []float64
	for _, t := range r.cold {
		var mx, s time.Duration
		for _, d := range t.Singles {
			single = append(single, float64(d))
			mx = max(mx, d)
			s += d
		}
		slowest = append(slowest, float64(mx))
		sum = append(sum, float64(s))
		triple = append(triple, float64(t.Triple))
		warm = append(warm, float64(t.Warm))
	}
	p("### Cold reviews (signatures not cached yet), %d trials, medians", len(r.cold))
	p("")
	p("| review | p50 | max |")
	p("|---|---:|---:|")
	p("| 1-container pod, fresh image (single-image verification) | %s | %s |", ms(time.Duration(median(single))), ms(time.Duration(slices.Max(single))))
	p("| slowest of three 1-container reviews in a trial | %s | %s |", ms(time.Duration(median(slowest))), ms(time.Duration(slices.Max(slowest))))
	p("| sum of three 1-container reviews (what sequential verification would cost) | %s | %s |", ms(time.Duration(median(sum))), ms(time.Duration(slices.Max(sum))))
	p("| **3-container pod, three fresh images** | **%s** | %s |", ms(time.Duration(median(triple))), ms(time.Duration(slices.Max(triple))))
	p("| the same 3-container review again (cached) | %s | %s |", ms(time.Duration(median(warm))), ms(time.Duration(slices.Max(warm))))
	p("")
	p("Cold 3-container / slowest single: %.2f×; / sum of singles: %.2f×.", median(triple)/median(slowest), median(triple)/median(sum))
	p("")
}

func (r *report) writeScaleUp(p func(string, ...any)) {
	if len(r.scaleUp) == 0 {
		return
	}
	p("### Scale-up: %d pods with the same tag-only image at once, fresh server", r.scaleUp[0].Pods)
	p("")
	p("| server | registry requests (mutate + validate) | breakdown | /mutate patched | /validate admitted | mutate p50 / p99 | validate p50 / p99 | target ≤ 5 |")
	p("|---|---:|---|---:|---:|---|---|---|")
	for _, s := range r.scaleUp {
		target := "—"
		if !strings.Contains(s.Server, "nocache") {
			target = met(s.Requests <= 5)
		}
		p("| %s | %d | %s | %d/%d | %d/%d | %s / %s | %s / %s | %s |", s.Server, s.Requests, s.Breakdown,
			s.Mutate.Patched, s.Mutate.Reviews, s.Validate.Allowed, s.Validate.Reviews,
			ms(s.Mutate.P50), ms(s.Mutate.P99), ms(s.Validate.P50), ms(s.Validate.P99), target)
	}
	p("")
}

func (r *report) writeMemory(p func(string, ...any)) {
	p("### Peak RSS (VmHWM) per server process")
	p("")
	p("| server | peak RSS | RSS at end |")
	p("|---|---:|---:|")
	for _, m := range r.memory {
		p("| %s | %.1f MiB | %.1f MiB |", m.Server, float64(m.HWM)/(1<<20), float64(m.RSS)/(1<<20))
	}
	p("")
}

func (r *report) writeProfile(p func(string, ...any)) {
	if r.profileCPU == "" {
		return
	}
	p("### Profile of signgate at %d r/s (3-container pod, cached), %d reviews", r.opts.Rate, r.profileReviews)
	p("")
	p("CPU (`go tool pprof -top`):")
	p("")
	p("```\n%s```", r.profileCPU)
	p("")
	p("Per review (sampled heap profile, delta over the attack): **%s allocated, %s objects**.",
		perReview(r.profileAllocs, r.profileReviews), perReview(r.profileAllocObjects, r.profileReviews))
	p("")
	p("Allocated bytes during the attack (`-sample_index=alloc_space -base`):")
	p("")
	p("```\n%s```", r.profileAllocs)
	p("")
	p("Allocated objects during the attack (`-sample_index=alloc_objects -base`):")
	p("")
	p("```\n%s```", r.profileAllocObjects)
	p("")
}

// perReview divides the total of a `pprof -top` output ("... of 464.27MB
// total" or "... of 4425521 total") by the number of reviews.
func perReview(top string, reviews uint64) string {
	var line string
	for _, l := range strings.Split(top, "\n") {
		if strings.HasPrefix(l, "Showing nodes accounting for") {
			line = l
		}
	}
	i := strings.LastIndex(line, " of ")
	j := strings.LastIndex(line, " total")
	if i < 0 || j < i || reviews == 0 {
		return "?"
	}
	v := line[i+4 : j]
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.m
			var f float64
			if _, err := fmt.Sscanf(v, "%g", &f); err != nil {
				return "?"
			}
			return fmt.Sprintf("%.1f KiB", f*mult/float64(reviews)/1024)
		}
	}
	var f float64
	if _, err := fmt.Sscanf(v, "%g", &f); err != nil {
		return "?"
	}
	return fmt.Sprintf("%.0f", f/float64(reviews))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratios(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(parts, ", ")
}

func pairs(xs [][2]time.Duration) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%s vs %s", ms(x[0]), ms(x[1])))
	}
	return strings.Join(parts, "; ")
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
