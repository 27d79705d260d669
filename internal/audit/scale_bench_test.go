package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/audit"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// The cluster of the "continuous audit at scale" simulation.
const (
	scalePods       = 5000
	scaleNamespaces = 500
	scaleDigests    = 300
	// scaleUnsigned of the digests (the last ones) carry no signature, so
	// the scan has something to report: every pod running one of them is
	// a fail result.
	scaleUnsigned = 10
	// scaleMaxHeap is the target for the heap a scan takes: the peak of
	// the process's in-use heap during the scan over what it was before
	// (after a collection).
	scaleMaxHeap = 128 << 20
)

// BenchmarkAuditScan5000Pods runs the background audit's full scan
// (Scanner.Scan: list, evaluate through the real admission gate and
// verifier, write the PolicyReports) over 5,000 running pods in 500
// namespaces whose images are 300 distinct digests (10 of them unsigned)
// in an in-memory registry, with client-go's fake dynamic client as the
// API server.
//
//   - cold: a fresh verifier and gate (empty verdict cache) and a fresh
//     API server (no reports yet) per iteration: a first scan. Fails with
//     more than one verification per distinct digest (300).
//   - warm: rescans with the verdict cache of a scan just made (and its
//     reports in place). Fails with any verification.
//
// Both fail when a scan takes 128 MiB of heap or more: the sampled peak
// of the in-use heap during the scan over the in-use heap before it. The
// heap figures are the whole test process's: the fake API server's copy
// of the 5,000 pods and the reports, the copies it records of every
// write, and the in-memory registry are in them.
func BenchmarkAuditScan5000Pods(b *testing.B) {
	f := newScaleFixture(b)

	b.Run("cold", func(b *testing.B) {
		var sum scaleFigures
		n := 0
		for b.Loop() {
			b.StopTimer()
			env := f.newEnv(b)
			dyn := f.newDyn()
			s := f.scanner(env, dyn)
			b.StartTimer()
			fig := f.scan(b, s, env, dyn)
			b.StopTimer()
			if fig.verifications > scaleDigests {
				b.Fatalf("a cold scan ran %d verifications, want ≤ %d (one per distinct digest and authority set)",
					fig.verifications, scaleDigests)
			}
			sum.add(fig)
			n++
			b.StartTimer()
		}
		sum.report(b, n)
	})

	b.Run("warm", func(b *testing.B) {
		env := f.newEnv(b)
		dyn := f.newDyn()
		s := f.scanner(env, dyn)
		// The scan that warms the verdict cache and creates the reports.
		if fig := f.scan(b, s, env, dyn); fig.verifications > scaleDigests {
			b.Fatalf("the warming scan ran %d verifications, want ≤ %d", fig.verifications, scaleDigests)
		}
		var sum scaleFigures
		n := 0
		for b.Loop() {
			fig := f.scan(b, s, env, dyn)
			b.StopTimer()
			if fig.verifications != 0 {
				b.Fatalf("a rescan with a warm verdict cache ran %d verifications, want 0", fig.verifications)
			}
			sum.add(fig)
			n++
			b.StartTimer()
		}
		sum.report(b, n)
	})
}

// scaleFixture is what the iterations share: the registry with its
// signed images, the policy directory and the cluster's objects.
type scaleFixture struct {
	reg      *registrytest.Registry
	policies *policy.FileSource
	cfg      *policy.Config
	digests  []name.Digest
	failPods int // pods running an unsigned digest
}

func newScaleFixture(b *testing.B) *scaleFixture {
	b.Helper()
	reg := registrytest.New(b)
	signer := registrytest.NewSigner(b)
	digests := make([]name.Digest, scaleDigests)
	for i := range digests {
		digests[i] = reg.PushImage(b, fmt.Sprintf("app-%d", i), "")
		if i < scaleDigests-scaleUnsigned {
			reg.Sign(b, signer, digests[i], registrytest.Classic)
		}
	}

	dir := b.TempDir()
	key := "          " + strings.ReplaceAll(strings.TrimSpace(string(signer.PublicPEM)), "\n", "\n          ")
	doc := fmt.Sprintf(`apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: ci}
spec:
  images: [{glob: "%s/**"}]
  authorities:
    - name: ci-key
      key:
        data: |
%s
`, reg.Host, key)
	if err := os.WriteFile(filepath.Join(dir, "policies.yaml"), []byte(doc), 0o600); err != nil {
		b.Fatal(err)
	}
	nsLabels := map[string]map[string]string{}
	for n := range scaleNamespaces {
		nsLabels[scaleNamespace(n)] = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}
	}
	src, err := policy.NewFileSource(dir, policy.FileOptions{GateNamespace: "signgate-system", NamespaceLabels: nsLabels})
	if err != nil {
		b.Fatal(err)
	}
	if invalid := src.InvalidPolicies(); len(invalid) > 0 {
		b.Fatalf("invalid policies: %v", invalid)
	}

	f := &scaleFixture{reg: reg, policies: src, cfg: policy.DefaultConfig(), digests: digests}
	for i := range scalePods {
		if i%scaleDigests >= scaleDigests-scaleUnsigned {
			f.failPods++
		}
	}
	return f
}

// objects are the cluster's namespaces and pods, made anew for each fake
// API server rather than kept: the heap measured holds one copy, the
// server's.
func (f *scaleFixture) objects() []k8sruntime.Object {
	objs := make([]k8sruntime.Object, 0, scaleNamespaces+scalePods)
	for n := range scaleNamespaces {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace"}}
		ns.SetName(scaleNamespace(n))
		ns.SetLabels(map[string]string{"kubernetes.io/metadata.name": ns.GetName(), "pod-security.kubernetes.io/enforce": "restricted"})
		objs = append(objs, ns)
	}
	for i := range scalePods {
		objs = append(objs, scalePod(scaleNamespace(i%scaleNamespaces), i, f.digests[i%scaleDigests]))
	}
	return objs
}

func scaleNamespace(n int) string { return fmt.Sprintf("team-%03d", n) }

// scalePod is pod i: running image d with the restricted Pod Security
// profile, owned by a ReplicaSet, as a Deployment's pods are.
func scalePod(ns string, i int, d name.Digest) *unstructured.Unstructured {
	app := fmt.Sprintf("app-%d", i%scaleDigests)
	rs := app + "-7d9c5b"
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":      fmt.Sprintf("%s-%05d", rs, i),
			"namespace": ns,
			"uid":       fmt.Sprintf("uid-pod-%05d", i),
			"labels":    map[string]any{"app": app},
			"ownerReferences": []any{map[string]any{
				"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "uid-" + rs, "controller": true,
			}},
		},
		"spec": map[string]any{
			"securityContext": map[string]any{
				"runAsNonRoot":   true,
				"seccompProfile": map[string]any{"type": "RuntimeDefault"},
			},
			"containers": []any{map[string]any{
				"name":  "app",
				"image": d.String(),
				"securityContext": map[string]any{
					"allowPrivilegeEscalation": false,
					"capabilities":             map[string]any{"drop": []any{"ALL"}},
				},
			}},
		},
		"status": map[string]any{"phase": "Running"},
	}}
	return u
}

// scaleEnv is one verifier and gate: one verdict cache.
type scaleEnv struct {
	gate *admission.Gate
	obs  *countingObserver
}

func (f *scaleFixture) newEnv(b *testing.B) *scaleEnv {
	b.Helper()
	obs := &countingObserver{}
	v, err := verifier.New(verifier.Options{
		Timeout:            2 * time.Minute, // a busy machine never turns a verdict undecided
		InsecureRegistries: []string{f.reg.Host},
		AllowedHosts:       []string{f.reg.Host},
		// A definite failure is kept 30s by default: as long as verified
		// verdicts here, so that the warm figure does not depend on how
		// fast this machine scans.
		FailureTTL: verifier.DefaultTTL,
		Observer:   obs,
	})
	if err != nil {
		b.Fatal(err)
	}
	g, err := admission.NewGate(admission.Options{
		Verifier: v, Policies: f.policies, Config: admission.StaticConfig{Config: f.cfg}, Namespace: "signgate-system",
	})
	if err != nil {
		b.Fatal(err)
	}
	return &scaleEnv{gate: g, obs: obs}
}

// newDyn is a fresh fake API server holding the namespaces and pods,
// which answers lists a page at a time.
func (f *scaleFixture) newDyn() *pagedDyn {
	kinds := map[schema.GroupVersionResource]string{
		{Version: "v1", Resource: "namespaces"}: "NamespaceList",
		audit.PolicyReportGVR:                   "PolicyReportList",
	}
	for _, gvr := range audit.Resources {
		kinds[gvr] = listKind(gvr.Resource)
	}
	fake := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(k8sruntime.NewScheme(), kinds, f.objects()...)
	return &pagedDyn{FakeDynamicClient: fake, pending: map[string][]unstructured.Unstructured{}}
}

// pagedDyn is the fake API server as a client sees a real one: a list
// with a limit is answered a page at a time with continue tokens (the
// fake client ignores limit and continue and returns everything at once),
// and every page is counted as a list call. The fake's own actions count
// the other verbs.
type pagedDyn struct {
	*dynamicfake.FakeDynamicClient
	mu      sync.Mutex
	pending map[string][]unstructured.Unstructured // continue token → the rest of a list
	tokens  int
	pages   int64
}

func (d *pagedDyn) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	ri := d.FakeDynamicClient.Resource(gvr)
	return pagedResource{NamespaceableResourceInterface: ri, ri: ri, d: d}
}

// listPages returns how many list pages were served since the last call.
func (d *pagedDyn) listPages() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.pages
	d.pages = 0
	return n
}

type pagedResource struct {
	dynamic.NamespaceableResourceInterface
	ri dynamic.ResourceInterface
	d  *pagedDyn
}

func (r pagedResource) Namespace(ns string) dynamic.ResourceInterface {
	nri := r.NamespaceableResourceInterface.Namespace(ns)
	return pagedNamespaced{ResourceInterface: nri, r: pagedResource{NamespaceableResourceInterface: r.NamespaceableResourceInterface, ri: nri, d: r.d}}
}

func (r pagedResource) List(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	d := r.d
	var rest []unstructured.Unstructured
	rv := ""
	if opts.Continue != "" {
		d.mu.Lock()
		var ok bool
		rest, ok = d.pending[opts.Continue]
		delete(d.pending, opts.Continue)
		d.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("continue token %q expired", opts.Continue)
		}
	} else {
		all, err := r.ri.List(ctx, metav1.ListOptions{LabelSelector: opts.LabelSelector, FieldSelector: opts.FieldSelector})
		if err != nil {
			return nil, err
		}
		if opts.Limit <= 0 {
			d.mu.Lock()
			d.pages++
			d.mu.Unlock()
			return all, nil
		}
		rest, rv = all.Items, all.GetResourceVersion()
	}
	page := &unstructured.UnstructuredList{Object: map[string]any{}}
	page.SetResourceVersion(rv)
	n := min(int(opts.Limit), len(rest))
	page.Items = rest[:n:n]
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pages++
	if n < len(rest) {
		d.tokens++
		tok := fmt.Sprint(d.tokens)
		d.pending[tok] = rest[n:]
		page.SetContinue(tok)
	}
	return page, nil
}

type pagedNamespaced struct {
	dynamic.ResourceInterface
	r pagedResource
}

func (n pagedNamespaced) List(ctx context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	return n.r.List(ctx, opts)
}

// listKind is "PodList" for "pods", "CronJobList" for "cronjobs".
func listKind(resource string) string {
	kind := map[string]string{
		"pods": "Pod", "deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet",
		"replicasets": "ReplicaSet", "replicationcontrollers": "ReplicationController", "jobs": "Job", "cronjobs": "CronJob",
	}[resource]
	if kind == "" {
		panic("no list kind for " + resource)
	}
	return kind + "List"
}

func (f *scaleFixture) scanner(env *scaleEnv, dyn *pagedDyn) *audit.Scanner {
	return &audit.Scanner{Gate: env.gate, Dyn: dyn, Policies: loadedPolicies{}}
}

// loadedPolicies are policies compiled once and never changed (Scan does
// not ask; Run would). policy.FileSource has no Generation.
type loadedPolicies struct{}

func (loadedPolicies) Ready() bool        { return true }
func (loadedPolicies) Generation() uint64 { return 1 }

// scaleFigures are one scan's costs, or the sum of several.
type scaleFigures struct {
	verifications, registryRequests                       int64
	apiCalls, listCalls, createCalls, updateCalls         int64
	heapBefore, heapAfter, heapPeak, liveBefore, livePeak uint64
	scanPeak, scanLive                                    uint64 // of a sum: the largest
	objects, fail, pass, undecided, nonPassOtherwise      int64
}

func (s *scaleFigures) add(f scaleFigures) {
	s.verifications += f.verifications
	s.registryRequests += f.registryRequests
	s.apiCalls += f.apiCalls
	s.listCalls += f.listCalls
	s.createCalls += f.createCalls
	s.updateCalls += f.updateCalls
	s.heapAfter += f.heapAfter
	s.heapPeak = max(s.heapPeak, f.heapPeak)
	s.heapBefore += f.heapBefore
	s.scanPeak = max(s.scanPeak, f.heapPeak-f.heapBefore)
	s.scanLive = max(s.scanLive, f.livePeak-min(f.livePeak, f.liveBefore))
	s.objects += f.objects
	s.fail += f.fail
	s.pass += f.pass
	s.undecided += f.undecided
	s.nonPassOtherwise += f.nonPassOtherwise
}

func (s scaleFigures) report(b *testing.B, n int) {
	if n == 0 {
		return
	}
	per := func(v int64) float64 { return float64(v) / float64(n) }
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(per(s.verifications), "verifications/scan")
	b.ReportMetric(per(s.registryRequests), "registry-requests/scan")
	b.ReportMetric(per(s.apiCalls), "api-calls/scan")
	b.ReportMetric(per(s.listCalls), "list-calls/scan")
	b.ReportMetric(per(s.createCalls), "create-calls/scan")
	b.ReportMetric(per(s.updateCalls), "update-calls/scan")
	// The process's in-use heap before the scan (after a collection: the
	// fake API server's objects, the registry, the gate), after it, and
	// its peak during it; the peak over the heap before (the target), and
	// the peak live heap (as the collections during the scan marked it)
	// over the live heap before: what the scan holds.
	b.ReportMetric(mib(s.heapBefore)/float64(n), "heap-before-MiB")
	b.ReportMetric(mib(s.heapAfter)/float64(n), "heap-MiB")
	b.ReportMetric(mib(s.heapPeak), "peak-heap-MiB")
	b.ReportMetric(mib(s.scanPeak), "scan-peak-heap-MiB")
	b.ReportMetric(mib(s.scanLive), "scan-live-heap-MiB")
	b.ReportMetric(per(s.objects), "objects")
	b.ReportMetric(per(s.fail), "results-fail")
	b.ReportMetric(per(s.pass), "results-pass")
	// ns/op is a whole scan; this is its share per object.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/float64(max(1, per(s.objects))), "ns/object")
}

// scan runs one full Scan and measures it; it fails the benchmark if the
// scan fails, its reports do not account for every pod, or the heap
// reaches the target.
func (f *scaleFixture) scan(b *testing.B, s *audit.Scanner, env *scaleEnv, dyn *pagedDyn) scaleFigures {
	b.Helper()
	var fig scaleFigures
	b.StopTimer()
	dyn.ClearActions()
	dyn.listPages()
	f.reg.ResetRequests()
	verBefore := env.obs.verifications()
	runtime.GC()
	fig.heapBefore, fig.liveBefore = heapNow()
	sampler := startHeapSampler(2 * time.Millisecond)
	b.StartTimer()

	err := s.Scan(context.Background())

	b.StopTimer()
	fig.heapPeak, fig.livePeak = sampler.stop()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fig.heapAfter = ms.HeapInuse
	fig.heapPeak = max(fig.heapPeak, fig.heapAfter, fig.heapBefore)
	if err != nil {
		b.Fatalf("scan: %v", err)
	}
	fig.verifications = env.obs.verifications() - verBefore
	if u := env.obs.undecided.Load(); u > 0 {
		b.Fatalf("%d verifications were undecided (registry errors): the figures would not be a scan's", u)
	}
	fig.registryRequests = f.reg.Requests()
	fig.listCalls = dyn.listPages()
	fig.apiCalls = fig.listCalls
	for _, a := range dyn.Actions() {
		if a.GetVerb() == "list" {
			continue // counted by page
		}
		fig.apiCalls++
		switch a.GetVerb() {
		case "create":
			fig.createCalls++
		case "update":
			fig.updateCalls++
		}
	}
	f.countResults(b, dyn, &fig)
	if fig.objects != scalePods {
		b.Fatalf("the reports account for %d objects, want %d pods", fig.objects, scalePods)
	}
	if fig.fail != int64(f.failPods) || fig.pass != int64(scalePods-f.failPods) || fig.nonPassOtherwise != 0 {
		b.Fatalf("results: %d fail, %d pass, %d other; want %d fail (pods of unsigned digests), %d pass",
			fig.fail, fig.pass, fig.nonPassOtherwise, f.failPods, scalePods-f.failPods)
	}
	if fig.heapPeak-fig.heapBefore >= scaleMaxHeap {
		b.Fatalf("the scan took %.1f MiB of heap (peak %.1f MiB during it, %.1f MiB before it), want < %d MiB",
			float64(fig.heapPeak-fig.heapBefore)/(1<<20), float64(fig.heapPeak)/(1<<20), float64(fig.heapBefore)/(1<<20), scaleMaxHeap>>20)
	}
	b.StartTimer()
	return fig
}

// countResults reads the summaries of the reports the scan wrote.
func (f *scaleFixture) countResults(b *testing.B, dyn *pagedDyn, fig *scaleFigures) {
	b.Helper()
	list, err := dyn.Resource(audit.PolicyReportGVR).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if len(list.Items) != scaleNamespaces {
		b.Fatalf("%d PolicyReports, want one per namespace (%d)", len(list.Items), scaleNamespaces)
	}
	for _, r := range list.Items {
		for res, dst := range map[string]*int64{"pass": &fig.pass, "fail": &fig.fail, "warn": &fig.nonPassOtherwise, "error": &fig.nonPassOtherwise, "skip": &fig.nonPassOtherwise} {
			n, _, err := unstructured.NestedInt64(r.Object, "summary", res)
			if err != nil {
				b.Fatalf("report %s: summary.%s: %v", r.GetNamespace(), res, err)
			}
			*dst += n
		}
	}
	fig.objects = fig.pass + fig.fail + fig.nonPassOtherwise
}

// countingObserver counts the verifications the verifier actually ran
// (cache misses), by result.
type countingObserver struct {
	verified, notVerified, undecided atomic.Int64
}

func (o *countingObserver) CacheRequest(string, string) {}
func (o *countingObserver) RegistryRequest(string, int) {}
func (o *countingObserver) Panic(string)                {}
func (o *countingObserver) Verification(result string) {
	switch result {
	case "verified":
		o.verified.Add(1)
	case "not_verified":
		o.notVerified.Add(1)
	default:
		o.undecided.Add(1)
	}
}

func (o *countingObserver) verifications() int64 {
	return o.verified.Load() + o.notVerified.Load() + o.undecided.Load()
}

// heapSampler records, every interval, the largest in-use heap (heap
// objects plus the unused part of in-use spans, as runtime/metrics splits
// MemStats.HeapInuse) and the largest live heap (marked by the last
// collection). runtime/metrics does not stop the world as ReadMemStats
// does, so sampling does not slow the scan; a spike shorter than the
// interval can be missed.
type heapSampler struct {
	done        chan struct{}
	wg          sync.WaitGroup
	inuse, live uint64
}

func startHeapSampler(every time.Duration) *heapSampler {
	h := &heapSampler{done: make(chan struct{})}
	h.sample()
	h.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-t.C:
				h.sample()
			}
		}
	})
	return h
}

func (h *heapSampler) sample() {
	inuse, live := heapNow()
	h.inuse, h.live = max(h.inuse, inuse), max(h.live, live)
}

// stop returns the peaks.
func (h *heapSampler) stop() (inuse, live uint64) {
	close(h.done)
	h.wg.Wait()
	h.sample()
	return h.inuse, h.live
}

var (
	heapMu      sync.Mutex
	heapSamples = []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
)

// heapNow is runtime.MemStats.HeapInuse, and the live heap marked by the
// last collection, without stopping the world.
func heapNow() (inuse, live uint64) {
	heapMu.Lock()
	defer heapMu.Unlock()
	metrics.Read(heapSamples)
	return heapSamples[0].Value.Uint64() + heapSamples[1].Value.Uint64(), heapSamples[2].Value.Uint64()
}
