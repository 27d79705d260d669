package audit

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// ObjectSource gives the objects of one scan.
type ObjectSource interface {
	Objects(ctx context.Context) ([]Object, error)
}

// ListSource lists every scan (List, paginated): nothing is held between
// scans.
type ListSource struct {
	Dyn   dynamic.Interface
	Chunk int64
}

func (l ListSource) Objects(ctx context.Context) ([]Object, error) {
	return List(ctx, l.Dyn, nil, l.Chunk)
}

// WatchSource keeps the audited objects in informer caches: one list per
// resource when it starts, then watches, so a rescan costs the API server
// nothing. The caches hold only what a decision needs: status (but a
// pod's phase) and managed fields are dropped as objects arrive.
type WatchSource struct {
	factory   dynamicinformer.DynamicSharedInformerFactory
	informers []cache.SharedIndexInformer
	resources []schema.GroupVersionResource
	errs      []atomic.Pointer[error] // the last list or watch error of each informer
	// SyncTimeout bounds how long Objects waits for the first lists
	// (default 1m): an informer that cannot list (RBAC) is an error naming
	// the resource, not a scan that waits forever.
	SyncTimeout time.Duration
}

// NewWatchSource builds the informers; Start runs them.
func NewWatchSource(dyn dynamic.Interface) (*WatchSource, error) {
	w := &WatchSource{
		factory:     dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		resources:   Resources,
		errs:        make([]atomic.Pointer[error], len(Resources)),
		SyncTimeout: time.Minute,
	}
	for i, gvr := range Resources {
		inf := w.factory.ForResource(gvr).Informer()
		if err := inf.SetTransform(slim); err != nil {
			return nil, fmt.Errorf("audit informer for %s: %w", gvr.Resource, err)
		}
		if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) { w.errs[i].Store(&err) }); err != nil {
			return nil, fmt.Errorf("audit informer for %s: %w", gvr.Resource, err)
		}
		w.informers = append(w.informers, inf)
	}
	return w, nil
}

// Start runs the informers until ctx ends.
func (w *WatchSource) Start(ctx context.Context) { w.factory.Start(ctx.Done()) }

// Objects waits until every informer has listed once (at most
// SyncTimeout), then returns the cached objects as List would. An
// informer that has not listed is a *ListError with its last error.
func (w *WatchSource) Objects(ctx context.Context) ([]Object, error) {
	wait, cancel := context.WithTimeout(ctx, w.SyncTimeout)
	defer cancel()
	synced := make([]cache.InformerSynced, len(w.informers))
	for i, inf := range w.informers {
		synced[i] = inf.HasSynced
	}
	if !cache.WaitForCacheSync(wait.Done(), synced...) {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		for i, inf := range w.informers {
			if inf.HasSynced() {
				continue
			}
			err := fmt.Errorf("not listed within %s", w.SyncTimeout)
			if last := w.errs[i].Load(); last != nil {
				err = *last
			}
			return nil, listError(w.resources[i], "", err)
		}
	}
	var out []Object
	for _, inf := range w.informers {
		for _, item := range inf.GetStore().List() {
			u, ok := item.(*unstructured.Unstructured)
			if !ok || skip(u) {
				continue
			}
			o, err := objectOf(u)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
	}
	sortObjects(out)
	return out, nil
}

// slim drops what a decision never reads from an object entering the
// cache: managed fields, the last-applied annotation, and status but a
// pod's phase.
func slim(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil // a tombstone
	}
	phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	unstructured.RemoveNestedField(u.Object, "status")
	if phase != "" {
		_ = unstructured.SetNestedField(u.Object, phase, "status", "phase")
	}
	u.SetManagedFields(nil)
	if a := u.GetAnnotations(); a != nil {
		delete(a, "kubectl.kubernetes.io/last-applied-configuration")
		u.SetAnnotations(a)
	}
	return u, nil
}

func sortObjects(out []Object) {
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
}
