package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/signgate/signgate/policy/v1alpha1"
)

// ClusterOptions are the optional settings of a ClusterSource.
type ClusterOptions struct {
	// Resync is how often policies are recompiled even without a change,
	// which is also how a rotated key in a Secret is picked up (Secrets are
	// not watched). Default 30s.
	Resync time.Duration
	// SecretTTL is how long a Secret read for a secretRef (or a ConfigMap
	// read for a TrustRoot configMapRef) is reused. Default 30s.
	SecretTTL time.Duration
	// SecretFailureTTL is how long a failed Secret read (not found,
	// forbidden, timeout) is reused, so policies pointing at missing
	// Secrets do not re-read them at every compilation. A Secret created
	// after a failed read is therefore seen up to SecretFailureTTL (plus
	// the time to the next compilation, at most Resync) later. Default 5s.
	SecretFailureTTL time.Duration
	// Timeout bounds each API call (Secret get, status update). Default 5s.
	Timeout time.Duration
	// Logger receives invalid policies and API errors. Default: discard.
	Logger *slog.Logger
	// ReadOnly: never write policy status (signgate check reads a cluster
	// it does not run in, often with read-only credentials).
	ReadOnly bool
	// NamespaceLabels adds labels to namespaces (name → labels), over the
	// labels the cluster has; a namespace listed here exists even when the
	// cluster does not have it yet (signgate check: Namespace objects among
	// the manifests, --namespace-labels). Default none.
	NamespaceLabels map[string]map[string]string
	// FetchTUF fetches the trusted roots of TUF TrustRoots (spec.tuf);
	// each fetch is bounded by TUFTimeout. Nil: TUF TrustRoots are
	// invalid, saying so.
	FetchTUF FetchTUF
	// TUFTimeout bounds one fetch of a TUF repository. Default 30s.
	TUFTimeout time.Duration
	// OnCompile, when set, is called with the Summary of each
	// compilation (every change and every Resync), from the Run
	// goroutine, after the new view is in place (Snapshot returns it).
	OnCompile func(Summary)
}

// ClusterSource serves trust policies from the cluster: informers for
// ClusterImagePolicy, ImagePolicy, TrustRoot and Namespace, and Secrets
// (and the ConfigMaps of TrustRoot configMapRefs) read on demand for
// secretRefs (cached for SecretTTL, failed reads for SecretFailureTTL;
// no cluster-wide Secret watch, so the gate needs only "get" on the Secrets
// it is pointed at). Before each compilation the referenced Secrets that are
// not cached are read in parallel, a few at a time, so one namespace's
// policy pointing at many missing Secrets does not hold up readiness or the
// other policies. Secrets of ClusterImagePolicy secretRefs are read in the
// gate's own namespace.
//
// Policies are compiled when one changes and every Resync, never per
// request; each compilation is swapped in atomically, so a Snapshot is one
// consistent view. After each compilation the Ready condition of every
// policy whose validity changed is written through the status subresource.
// Several replicas write the same condition; conflicts are retried on the
// next compilation.
//
// Namespace labels come from the informer cache at lookup time; a namespace
// the cache does not know yet is an error (the caller denies and says retry).
//
// Safe for concurrent use. Until Run has synced the caches and compiled
// once, Ready is false and Snapshot fails every lookup.
type ClusterSource struct {
	dyn           dynamic.Interface
	gateNamespace string
	opts          ClusterOptions
	log           *slog.Logger

	kubeFactory informers.SharedInformerFactory
	dynFactory  dynamicinformer.DynamicSharedInformerFactory
	cip, ip     cache.SharedIndexInformer
	trustRoots  cache.SharedIndexInformer
	namespaces  cache.SharedIndexInformer
	nsLister    corev1listers.NamespaceLister

	trigger chan struct{}
	cur     atomic.Pointer[clusterView]
	// generation: see Generation.
	generation atomic.Uint64
	ready      chan struct{} // closed after the first compilation
	once       sync.Once

	refreshing    atomic.Bool    // a background re-read of expired Secrets runs
	tufRefreshing atomic.Bool    // a background refresh of TUF TrustRoots runs
	refreshes     sync.WaitGroup // Run waits for them before returning

	// Owned by the Run goroutine.
	comp       compiler
	secrets    *secretCache
	configMaps *secretCache // TrustRoot configMapRefs, read and cached like Secrets
	tuf        *tufCache    // TUF TrustRoots' trusted roots; nil without FetchTUF
	tufWants   []tufWant    // what the last compilation needed from tuf
}

type clusterView struct {
	snap    *snapshot
	invalid []*InvalidPolicyError
}

// NewClusterSource prepares the informers; nothing is read until Run.
// gateNamespace is where ClusterImagePolicy secretRefs are resolved.
func NewClusterSource(dyn dynamic.Interface, kube kubernetes.Interface, gateNamespace string, opts ClusterOptions) (*ClusterSource, error) {
	if dyn == nil || kube == nil {
		return nil, errors.New("new cluster policy source: dynamic and kubernetes clients are required")
	}
	if gateNamespace == "" {
		return nil, errors.New("new cluster policy source: the gate's namespace is required")
	}
	opts = opts.withDefaults()
	s := &ClusterSource{
		dyn:           dyn,
		gateNamespace: gateNamespace,
		opts:          opts,
		log:           opts.Logger,
		kubeFactory:   informers.NewSharedInformerFactory(kube, 0),
		dynFactory:    dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		trigger:       make(chan struct{}, 1),
		ready:         make(chan struct{}),
		secrets:       newSecretCache(kube, opts.SecretTTL, opts.SecretFailureTTL),
		configMaps:    newConfigMapCache(kube, opts.SecretTTL, opts.SecretFailureTTL),
	}
	if opts.FetchTUF != nil {
		s.tuf = newTUFCache(opts.FetchTUF, opts.Logger)
	}
	s.comp.gateNamespace = gateNamespace
	s.cip = s.dynFactory.ForResource(v1alpha1.ClusterImagePolicyResource).Informer()
	s.ip = s.dynFactory.ForResource(v1alpha1.ImagePolicyResource).Informer()
	s.trustRoots = s.dynFactory.ForResource(v1alpha1.TrustRootResource).Informer()
	ns := s.kubeFactory.Core().V1().Namespaces()
	s.namespaces, s.nsLister = ns.Informer(), ns.Lister()
	onChange := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{s.cip, s.ip, s.trustRoots} {
		if _, err := inf.AddEventHandler(onChange); err != nil {
			return nil, fmt.Errorf("new cluster policy source: %w", err)
		}
	}
	return s, nil
}

func (o ClusterOptions) withDefaults() ClusterOptions {
	if o.Resync <= 0 {
		o.Resync = 30 * time.Second
	}
	if o.SecretTTL <= 0 {
		o.SecretTTL = 30 * time.Second
	}
	if o.SecretFailureTTL <= 0 {
		o.SecretFailureTTL = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.TUFTimeout <= 0 {
		o.TUFTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// poke asks the Run loop to recompile; bursts of events coalesce.
func (s *ClusterSource) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Snapshot returns the current compiled view, or one that fails every
// lookup before the first compilation.
func (s *ClusterSource) Snapshot() Snapshot {
	if v := s.cur.Load(); v != nil {
		return v.snap
	}
	return notReady{}
}

// Ready reports whether the caches synced and policies compiled once.
func (s *ClusterSource) Ready() bool { return s.cur.Load() != nil }

// WaitReady blocks until Ready or ctx is done (then it returns ctx's
// cause).
func (s *ClusterSource) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// InvalidPolicies lists the policies of the current view that did not
// compile, sorted by policy.
func (s *ClusterSource) InvalidPolicies() []*InvalidPolicyError {
	if v := s.cur.Load(); v != nil {
		return v.invalid
	}
	return nil
}

// Run starts the informers, waits for their caches, compiles, and then
// recompiles on every policy change and every Resync until ctx is done.
func (s *ClusterSource) Run(ctx context.Context) error {
	s.kubeFactory.Start(ctx.Done())
	s.dynFactory.Start(ctx.Done())
	defer s.kubeFactory.Shutdown()
	defer s.dynFactory.Shutdown()
	defer s.refreshes.Wait()
	if !cache.WaitForCacheSync(ctx.Done(), s.cip.HasSynced, s.ip.HasSynced, s.trustRoots.HasSynced, s.namespaces.HasSynced) {
		return fmt.Errorf("sync policy informers: %w", context.Cause(ctx))
	}
	s.rebuild(ctx)
	tick := time.NewTicker(s.opts.Resync)
	defer tick.Stop()
	for {
		// A TUF TrustRoot's refresh may be due before the next Resync.
		var tufDue <-chan time.Time
		if s.tuf != nil {
			if next := s.tuf.nextDue(s.tufWants); !next.IsZero() {
				t := time.NewTimer(max(time.Until(next), 0))
				tufDue = t.C
				defer t.Stop()
			}
		}
		changed := true
		select {
		case <-ctx.Done():
			return nil
		case <-s.trigger:
		case <-tick.C:
			changed = false
		case <-tufDue:
		}
		s.rebuild(ctx)
		if changed {
			s.generation.Add(1)
		}
	}
}

// Summary describes the current view: policies by state, the registry
// hosts their globs name. Zero before the first compilation.
func (s *ClusterSource) Summary() Summary {
	if v := s.cur.Load(); v != nil {
		return v.snap.trust.summary
	}
	return Summary{}
}

// Generation counts the compilations caused by a change (a policy, a
// namespace, a TrustRoot or a Secret or ConfigMap they reference; a TUF
// refresh), not the periodic Resync: a consumer that re-decides
// everything on a change (the background audit) compares it. The view of
// a generation is in place when Generation returns it.
func (s *ClusterSource) Generation() uint64 { return s.generation.Load() }

// TrustRootStatus lists the TUF TrustRoots in use and how old their
// trusted roots are, sorted by name.
func (s *ClusterSource) TrustRootStatus() []TrustRootStatus {
	if s.tuf == nil {
		return nil
	}
	return s.tuf.status()
}

// rebuild compiles the informers' policies, swaps the view in and writes
// status where it changed.
func (s *ClusterSource) rebuild(ctx context.Context) {
	var objs []*policyObject
	var srcs []*unstructured.Unstructured
	for _, item := range s.cip.GetStore().List() {
		u := item.(*unstructured.Unstructured)
		objs, srcs = append(objs, clusterPolicyObject(u)), append(srcs, u)
	}
	for _, item := range s.ip.GetStore().List() {
		u := item.(*unstructured.Unstructured)
		objs, srcs = append(objs, imagePolicyObject(u)), append(srcs, u)
	}
	// Read every referenced Secret the cache has never had, several at
	// once, before compiling: the compilation then finds them all in the
	// cache (data or a cached failure), so policies pointing at many
	// missing Secrets cost one bounded parallel round trip, not one read
	// after the other through the client's rate limit. Expired entries are
	// used as they are and re-read in the background; a change there
	// recompiles. So no compilation (a policy change) waits for re-reads.
	// TrustRoots' ConfigMaps and Secrets (gate namespace) are read the
	// same way.
	s.comp.trustRootObjs = map[string]*trustRootObject{}
	for _, item := range s.trustRoots.GetStore().List() {
		t := trustRootFromUnstructured(item.(*unstructured.Unstructured))
		s.comp.trustRootObjs[t.Name] = t
	}
	refs := s.comp.secretRefs(objs)
	trSecrets, trConfigMaps := s.comp.trustRootRefs(objs)
	refs = append(refs, trSecrets...)
	s.secrets.retain(refs)
	s.configMaps.retain(trConfigMaps)
	absent, expired := s.secrets.split(refs)
	cmAbsent, cmExpired := s.configMaps.split(trConfigMaps)
	s.secrets.fill(ctx, absent, s.opts.Timeout)
	s.configMaps.fill(ctx, cmAbsent, s.opts.Timeout)
	if len(expired)+len(cmExpired) > 0 && s.refreshing.CompareAndSwap(false, true) {
		s.refreshes.Add(1)
		go func() {
			defer s.refreshes.Done()
			defer s.refreshing.Store(false)
			changed := len(expired) > 0 && s.secrets.refresh(ctx, expired, s.opts.Timeout)
			if len(cmExpired) > 0 && s.configMaps.refresh(ctx, cmExpired, s.opts.Timeout) {
				changed = true
			}
			if changed {
				s.poke()
			}
		}()
	}
	s.comp.secrets = func(ns, name string) (map[string][]byte, error) {
		return s.secrets.current(ctx, ns, name, s.opts.Timeout)
	}
	s.comp.configMaps = func(ns, name string) (map[string][]byte, error) {
		return s.configMaps.current(ctx, ns, name, s.opts.Timeout)
	}
	s.refreshTUF(ctx, objs)
	trust, results := s.comp.compile(objs)
	s.comp.secrets, s.comp.configMaps, s.comp.trustRootObjs, s.comp.tufData = nil, nil, nil, nil

	view := &clusterView{snap: &snapshot{trust: trust, namespace: s.namespace}}
	for i, r := range results {
		if r.Err != nil {
			view.invalid = append(view.invalid, r.Err)
		}
		if !s.opts.ReadOnly {
			s.reportStatus(ctx, srcs[i], r)
		}
	}
	slices.SortFunc(view.invalid, func(a, b *InvalidPolicyError) int { return strings.Compare(a.Policy, b.Policy) })
	s.cur.Store(view)
	if s.opts.OnCompile != nil {
		s.opts.OnCompile(trust.summary)
	}
	s.once.Do(func() { close(s.ready) })
}

// refreshTUF fetches the TUF TrustRoots objs need: those never fetched
// now (the compilation needs them), those due in the background (a
// change recompiles), and sets the compiler's view of them.
func (s *ClusterSource) refreshTUF(ctx context.Context, objs []*policyObject) {
	if s.tuf == nil {
		return
	}
	s.tufWants = s.comp.tufWants(objs)
	s.tuf.retain(s.tufWants)
	absent, due := s.tuf.split(s.tufWants)
	s.tuf.fetchAll(ctx, absent, s.opts.TUFTimeout)
	if len(due) > 0 && s.tufRefreshing.CompareAndSwap(false, true) {
		s.refreshes.Add(1)
		go func() {
			defer s.refreshes.Done()
			defer s.tufRefreshing.Store(false)
			if s.tuf.fetchAll(ctx, due, s.opts.TUFTimeout) {
				s.poke()
			}
		}()
	}
	s.comp.tufData = s.tuf.current
}

// namespace looks a namespace up in the informer cache, with
// ClusterOptions.NamespaceLabels over its labels.
func (s *ClusterSource) namespace(name string) (map[string]string, error) {
	extra, listed := s.opts.NamespaceLabels[name]
	ns, err := s.nsLister.Get(name)
	switch {
	case apierrors.IsNotFound(err) && listed:
		l := map[string]string{corev1.LabelMetadataName: name}
		maps.Copy(l, extra)
		return l, nil
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("look up namespace %q: not in the informer cache yet, retry", name)
	case err != nil:
		return nil, fmt.Errorf("look up namespace %q: %w", name, err)
	case listed:
		l := maps.Clone(ns.Labels)
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, extra)
		return l, nil
	}
	return ns.Labels, nil
}

func clusterPolicyObject(u *unstructured.Unstructured) *policyObject {
	p := &policyObject{Kind: KindClusterImagePolicy, Name: u.GetName(), Generation: u.GetGeneration()}
	var cip v1alpha1.ClusterImagePolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &cip, true); err != nil {
		p.DecodeErr = fmt.Errorf("decode: %w", err)
		return p
	}
	p.Spec, p.Selector = cip.Spec.ImagePolicySpec, cip.Spec.NamespaceSelector
	return p
}

func trustRootFromUnstructured(u *unstructured.Unstructured) *trustRootObject {
	t := &trustRootObject{Name: u.GetName()}
	var tr v1alpha1.TrustRoot
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &tr, true); err != nil {
		t.DecodeErr = fmt.Errorf("decode: %w", err)
		return t
	}
	t.Spec = tr.Spec
	return t
}

func imagePolicyObject(u *unstructured.Unstructured) *policyObject {
	p := &policyObject{Kind: KindImagePolicy, Namespace: u.GetNamespace(), Name: u.GetName(), Generation: u.GetGeneration()}
	var ip v1alpha1.ImagePolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &ip, true); err != nil {
		p.DecodeErr = fmt.Errorf("decode: %w", err)
		return p
	}
	p.Spec = ip.Spec
	return p
}

// maxConditionMessage is the CRD's limit on a condition message.
const maxConditionMessage = 32768

// reportStatus writes the Ready condition of one policy when it differs
// from what the object already says, and logs transitions to invalid.
func (s *ClusterSource) reportStatus(ctx context.Context, u *unstructured.Unstructured, r compileResult) {
	var status v1alpha1.PolicyStatus
	if m, ok := u.Object["status"].(map[string]any); ok {
		// A status the gate cannot read is simply overwritten.
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(m, &status)
	}
	want := metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid,
		Message: "policy compiled", ObservedGeneration: u.GetGeneration(),
	}
	if r.Err != nil {
		want.Status, want.Reason, want.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalid, r.Err.Error()
		if len(want.Message) > maxConditionMessage {
			want.Message = want.Message[:maxConditionMessage]
		}
	}
	have := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	if have != nil && have.Status == want.Status && have.Reason == want.Reason &&
		have.Message == want.Message && have.ObservedGeneration == want.ObservedGeneration &&
		status.ObservedGeneration == u.GetGeneration() {
		return
	}
	if r.Err != nil {
		s.log.Error("invalid policy: its images are denied", "policy", r.Err.Policy, "err", r.Err)
	}
	meta.SetStatusCondition(&status.Conditions, want)
	status.ObservedGeneration = u.GetGeneration()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&status)
	if err != nil {
		s.log.Error("update policy status", "policy", r.Object.ID(), "err", err)
		return
	}
	obj := u.DeepCopy()
	obj.Object["status"] = m
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var res dynamic.ResourceInterface = s.dyn.Resource(v1alpha1.ClusterImagePolicyResource)
	if r.Object.Kind == KindImagePolicy {
		res = s.dyn.Resource(v1alpha1.ImagePolicyResource).Namespace(u.GetNamespace())
	}
	if _, err := res.UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		// A conflict or outage is retried on the next compilation.
		s.log.Warn("update policy status", "policy", r.Object.ID(), "err", err)
	}
}
