//go:build load

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	admissionv1 "k8s.io/api/admission/v1"
)

// The oversized mode (-oversized, `make load-oversized`; issue 31) measures
// the peak RSS of the real `bin/signgate serve` while it reviews pods
// whose images a hostile or broken registry answers with huge signature
// data: each image's classic .sig manifest is a few MB of repeated
// signature layers (thousands of them, all pointing at one payload blob,
// none with a valid signature) and its referrers index is a few MB of
// bundle descriptors that do not exist. Several pods, each with its own
// set of images, are reviewed at once, for a few rounds, with the verdict
// cache reduced to one entry so that every round verifies again. Every
// answer must be a denial; the report says how many name the oversized
// response.

type oversizedOptions struct {
	Reviews        int     // concurrent pod reviews per round
	Images         int     // containers (distinct images) per pod
	Rounds         int     // rounds of concurrent reviews
	SigBytes       int     // size of each .sig manifest
	ReferrersBytes int     // size of the referrers index
	TargetMiB      float64 // peak RSS target
	Strict         bool    // fail unless the target is met and every denial names the oversized response
}

func (o *oversizedOptions) addFlags(fs interface {
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
	Float64Var(*float64, string, float64, string)
}) {
	fs.IntVar(&o.Reviews, "oversized-reviews", 3, "oversized mode: concurrent pod reviews per round")
	fs.IntVar(&o.Images, "oversized-images", 16, "oversized mode: containers (distinct images) per pod; one of the recorded sizes (e2e/load/testdata)")
	fs.IntVar(&o.Rounds, "oversized-rounds", 3, "oversized mode: rounds")
	fs.IntVar(&o.SigBytes, "oversized-sig-bytes", 4_000_000, "oversized mode: size of each classic .sig manifest (the verifier's default cap is 4 MiB = 4194304)")
	fs.IntVar(&o.ReferrersBytes, "oversized-referrers-bytes", 3_000_000, "oversized mode: size of each referrers index")
	fs.Float64Var(&o.TargetMiB, "oversized-target-mib", 192, "oversized mode: peak RSS target (MiB)")
	fs.BoolVar(&o.Strict, "oversized-strict", false, "oversized mode: also fail when the peak RSS target is missed or a denial does not name the oversized response (default: only an allowed pod fails)")
}

// hostileRegistry answers every referrers request with one big index of
// bundle descriptors; everything else goes to the in-memory registry.
type hostileRegistry struct {
	next      http.Handler
	referrers []byte
}

func (h *hostileRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/referrers/") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		w.Header().Set("Content-Length", strconv.Itoa(len(h.referrers)))
		if r.Method == http.MethodGet {
			w.Write(h.referrers) //nolint:errcheck // the client may hang up
		}
		return
	}
	h.next.ServeHTTP(w, r)
}

// bigReferrers returns an OCI index of about size bytes listing bundle
// manifests the registry does not have.
func bigReferrers(size int) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		var sum [32]byte
		if _, err := rand.Read(sum[:]); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`, hex.EncodeToString(sum[:]), 700+i%300)
	}
	b.WriteString(`]}`)
	return b.Bytes(), nil
}

// pushOversized pushes a small image to repo and, under its
// sha256-<hex>.sig tag, a signature manifest of about sigBytes: the
// digest's simple-signing payload (uploaded once) repeated as layer after
// layer, each with a random signature that no key verifies.
func (r *testRegistry) pushOversized(repo string, sigBytes int) (name.Digest, error) {
	d, err := r.pushImage(repo, "v1")
	if err != nil {
		return name.Digest{}, err
	}
	p, err := payload.Cosign{Image: d}.MarshalJSON()
	if err != nil {
		return name.Digest{}, err
	}
	layer := static.NewLayer(p, types.MediaType("application/vnd.dev.cosign.simplesigning.v1+json"))
	config := static.NewLayer([]byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`), types.OCIConfigJSON)
	for _, l := range []v1.Layer{layer, config} {
		if err := remote.WriteLayer(d.Context(), l); err != nil {
			return name.Digest{}, fmt.Errorf("push blob to %s: %w", d.Context(), err)
		}
	}
	ld, _ := layer.Digest()
	cd, _ := config.Digest()
	cs, _ := config.Size()
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":%d,"digest":%q},"layers":[`, cs, cd)
	sig := make([]byte, 71) // the size of an ASN.1 ECDSA P-256 signature
	for i := 0; b.Len() < sigBytes-2; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if _, err := rand.Read(sig); err != nil {
			return name.Digest{}, err
		}
		fmt.Fprintf(&b, `{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":%d,"digest":%q,"annotations":{"dev.cosignproject.cosign/signature":%q}}`,
			len(p), ld, base64.StdEncoding.EncodeToString(sig))
	}
	b.WriteString(`]}`)
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", r.Host, tag.RepositoryStr(), tag.TagStr()), &b)
	if err != nil {
		return name.Digest{}, err
	}
	req.Header.Set("Content-Type", string(types.OCIManifestSchema1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", tag, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return name.Digest{}, fmt.Errorf("push %s: %s", tag, resp.Status)
	}
	return d, nil
}

// oversizedRun is what the report is made of.
type oversizedRun struct {
	o                oversizedOptions
	bin              string
	sigBytes         int // actual
	referrersBytes   int
	start, end       time.Time
	setupTook        time.Duration
	rounds           []oversizedRound
	hwm, rss         int64 // at the end
	peakRSS          int64 // highest sampled VmRSS
	peakHeap         float64
	peakHeapSys      float64
	memLimit         float64 // go_gc_gomemlimit_bytes
	samples          int
	registryRequests string
	loadBefore       string
	loadAfter        string
}

type oversizedRound struct {
	took      time.Duration
	answers   int
	allowed   int
	oversized int            // denials whose every line names the oversized response
	reasons   map[string]int // per denied container: the reason, classified
	messages  []string       // distinct denial messages (truncated)
}

// classify names the reason of one line of a denial (one container).
func classify(line string) string {
	switch {
	case namesOversized.MatchString(line):
		return "names the oversized response"
	case strings.Contains(line, "timed out"):
		return "registry timed out (verification did not finish in time)"
	}
	if _, rest, ok := strings.Cut(line, "ClusterImagePolicy load: "); ok {
		line = rest
	}
	if len(line) > 160 {
		line = line[:160] + "…"
	}
	return "other: " + line
}

// namesOversized: the denial says a registry answer was too large (the
// transport's cap) or over a cap or budget.
var namesOversized = regexp.MustCompile(`(?i)too large|oversized|too many|larger than the .*limit|over the .*(cap|budget|limit)|exceeds`)

func runOversized(ctx context.Context, o options, oo oversizedOptions, stdout io.Writer) error {
	if _, err := os.Stat(o.SigngateBin); err != nil || o.SigngateBin == inprocCommand {
		return fmt.Errorf("%s missing (the oversized mode needs the real binary): run make build first", o.SigngateBin)
	}
	if err := checkRecorded(oo.Images); err != nil {
		return fmt.Errorf("-oversized-images: %w", err)
	}
	dir, err := os.MkdirTemp("", "signgate-oversized-")
	if err != nil {
		return err
	}
	if o.KeepTemp {
		fmt.Fprintln(os.Stderr, "temp dir:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	run := &oversizedRun{o: oo, bin: o.SigngateBin, start: time.Now(), loadBefore: loadAvg()}
	tls, err := newServing(dir)
	if err != nil {
		return err
	}
	client := loadClient(tls.clientTLS())
	defer client.CloseIdleConnections()
	reg, err := startRegistry()
	if err != nil {
		return err
	}
	defer reg.Close()
	refs, err := bigReferrers(oo.ReferrersBytes)
	if err != nil {
		return err
	}
	run.referrersBytes = len(refs)
	reg.Count.next = &hostileRegistry{next: reg.Count.next, referrers: refs}

	total := oo.Reviews * oo.Images
	logf("pushing %d images with %d-byte signature manifests", total, oo.SigBytes)
	var images []string
	for i := range total {
		d, err := reg.pushOversized(fmt.Sprintf("hostile/app-%d", i), oo.SigBytes)
		if err != nil {
			return err
		}
		images = append(images, d.Context().Tag("v1").String()+"@"+d.DigestStr())
	}
	run.sigBytes = oo.SigBytes
	run.setupTook = time.Since(run.start)

	logf("starting %s", o.SigngateBin)
	sg, err := startSigngate(ctx, o.SigngateBin, dir, reg, namespace, tls, gateSettings{Name: "signgate-oversized", NoCache: true})
	if err != nil {
		return err
	}
	defer sg.Stop()

	// Sample VmRSS and the heap while the rounds run.
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		mc := &http.Client{Timeout: 2 * time.Second}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			if _, rss, err := memStatus(sg.Pid()); err == nil {
				run.peakRSS = max(run.peakRSS, rss)
				run.samples++
			}
			if n%4 == 0 { // /metrics every 200ms
				m := scrapeMetrics(mc, sg.MetricsURL+"/metrics")
				run.peakHeap = max(run.peakHeap, m["go_memstats_heap_alloc_bytes"])
				run.peakHeapSys = max(run.peakHeapSys, m["go_memstats_heap_sys_bytes"])
				if v, ok := m["go_gc_gomemlimit_bytes"]; ok {
					run.memLimit = v
				}
			}
		}
	}()

	before := reg.Count.snapshot()
	url := sg.URL + "/validate?timeout=10s"
	var failure error
	for round := range oo.Rounds {
		r := oversizedRound{reasons: map[string]int{}}
		msgs := map[string]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for i := range oo.Reviews {
			body := podReview(fmt.Sprintf("0f5e2d1c-0000-4000-8000-%06d%06d", round, i), namespace, images[i*oo.Images:(i+1)*oo.Images])
			wg.Go(func() {
				allowed, msg, err := postReview(ctx, client, url, body)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failure = fmt.Errorf("round %d review %d: %w", round+1, i, err)
					return
				}
				r.answers++
				if allowed {
					r.allowed++
				}
				all := msg != ""
				for _, line := range strings.Split(strings.TrimSpace(msg), "\n") {
					c := classify(line)
					r.reasons[c]++
					all = all && c == "names the oversized response"
				}
				if all {
					r.oversized++
				}
				if len(msg) > 600 {
					msg = msg[:600] + "…"
				}
				msgs[msg] = true
			})
		}
		wg.Wait()
		r.took = time.Since(start)
		for m := range msgs {
			r.messages = append(r.messages, m)
		}
		run.rounds = append(run.rounds, r)
		_, rss, _ := memStatus(sg.Pid())
		logf("round %d: %d answers, %d allowed, %d naming the oversized response, %v, VmRSS %.1f MiB", round+1, r.answers, r.allowed, r.oversized, r.took.Round(time.Millisecond), mib(rss))
		if failure != nil {
			break
		}
	}
	close(stopSampling)
	<-sampled
	_, run.registryRequests = reg.Count.since(before)
	run.hwm, run.rss, err = memStatus(sg.Pid())
	if err != nil {
		return err
	}
	run.end, run.loadAfter = time.Now(), loadAvg()

	if err := writeReport(stdout, o.Out, func(w io.Writer) error { run.write(w); return nil }); err != nil {
		return err
	}
	if failure != nil {
		return failure
	}
	for _, r := range run.rounds {
		if r.allowed > 0 {
			return fmt.Errorf("%w: %d reviews of pods with oversized signature data were allowed", errNotAllowed, r.allowed)
		}
		if oo.Strict && r.oversized < r.answers {
			return fmt.Errorf("%d of %d denials do not name the oversized response only", r.answers-r.oversized, r.answers)
		}
	}
	if oo.Strict && mib(run.hwm) >= oo.TargetMiB {
		return fmt.Errorf("peak RSS %.1f MiB, target < %.0f MiB", mib(run.hwm), oo.TargetMiB)
	}
	return nil
}

// postReview sends one AdmissionReview and returns the decision and its message.
func postReview(ctx context.Context, c *http.Client, url string, body []byte) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return false, "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &review); err != nil || review.Response == nil {
		return false, "", fmt.Errorf("not an AdmissionReview response: %v: %.300s", err, b)
	}
	var msg string
	if review.Response.Result != nil {
		msg = review.Response.Result.Message
	}
	return review.Response.Allowed, msg, nil
}

// scrapeMetrics returns the unlabelled samples of a Prometheus text page.
func scrapeMetrics(c *http.Client, url string) map[string]float64 {
	m := map[string]float64{}
	resp, err := c.Get(url)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			m[k] = f
		}
	}
	return m
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *oversizedRun) write(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	peak := mib(r.hwm)
	verdict := "**met**"
	if peak >= r.o.TargetMiB {
		verdict = "**missed**"
	}
	p("# Oversized signature data: peak RSS of signgate serve")
	p("")
	p("%s, %s, %d CPUs; load average %s before, %s after.", r.start.UTC().Format(time.RFC3339), r.bin, runtime.NumCPU(), r.loadBefore, r.loadAfter)
	p("")
	p("Workload: %d rounds of %d concurrent pod reviews (/validate), each pod with %d containers of its own images (%d digests), verdict cache one entry (every round verifies again). Each image's classic `.sig` manifest is %d bytes of signature layers that no key verifies; each referrers answer is a %d-byte index of bundle descriptors the registry does not have.",
		r.o.Rounds, r.o.Reviews, r.o.Images, r.o.Reviews*r.o.Images, r.sigBytes, r.referrersBytes)
	p("")
	p("| measure | value |")
	p("|---|---|")
	p("| peak RSS (VmHWM) | **%.1f MiB** (target < %.0f MiB: %s) |", peak, r.o.TargetMiB, verdict)
	p("| highest sampled VmRSS (%d samples, 50 ms) | %.1f MiB |", r.samples, mib(r.peakRSS))
	p("| VmRSS at the end | %.1f MiB |", mib(r.rss))
	p("| highest sampled heap alloc / heap sys (/metrics, 200 ms) | %.1f MiB / %.1f MiB |", r.peakHeap/(1<<20), r.peakHeapSys/(1<<20))
	if r.memLimit > 0 && r.memLimit < 1<<62 {
		p("| Go soft memory limit (go_gc_gomemlimit_bytes) | %.1f MiB |", r.memLimit/(1<<20))
	} else {
		p("| Go soft memory limit (go_gc_gomemlimit_bytes) | none |")
	}
	p("| registry requests | %s |", r.registryRequests)
	p("")
	p("| round | answers | allowed | denials naming only the oversized response | wall time |")
	p("|---|---|---|---|---|")
	for i, x := range r.rounds {
		p("| %d | %d | %d | %d | %v |", i+1, x.answers, x.allowed, x.oversized, x.took.Round(time.Millisecond))
	}
	p("")
	p("Reasons per denied container (%d containers per round):", r.o.Reviews*r.o.Images)
	p("")
	p("| round | reason | containers |")
	p("|---|---|---|")
	for i, x := range r.rounds {
		keys := make([]string, 0, len(x.reasons))
		for k := range x.reasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("| %d | %s | %d |", i+1, strings.ReplaceAll(k, "|", "\\|"), x.reasons[k])
		}
	}
	p("")
	p("Denial messages (distinct, truncated to 600 bytes):")
	p("")
	seen := map[string]bool{}
	for _, x := range r.rounds {
		for _, m := range x.messages {
			if !seen[m] {
				seen[m] = true
				p("- `%s`", strings.ReplaceAll(m, "`", "'"))
			}
		}
	}
}
