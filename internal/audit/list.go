// Package audit re-evaluates what already runs: it lists a cluster's
// running pods and workload templates (List), and, in `signgate serve`,
// re-decides them with the admission engine in the background and writes
// the would-be denials as wgpolicyk8s.io PolicyReports, one elected
// replica at a time (Scanner, RunElected). `signgate audit` uses List with
// check's report.
package audit

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// Resources are the kinds audited: running pods and the workload
// templates the webhooks gate (admission.KindOf knows each).
var Resources = []schema.GroupVersionResource{
	{Version: "v1", Resource: "pods"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Version: "v1", Resource: "replicationcontrollers"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
}

// templateOwners are the kinds whose controller writes another audited
// workload's template: a ReplicaSet of a Deployment, a Job of a CronJob
// is audited through its owner (once, where it is written). Pods are
// always audited: what runs may differ from today's template.
var templateOwners = map[schema.GroupKind]bool{
	{Group: "apps", Kind: "Deployment"}: true,
	{Group: "batch", Kind: "CronJob"}:   true,
}

// Object is one object to audit.
type Object struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	UID        types.UID
	Labels     map[string]string
	// Raw is the object as JSON without status and managed fields: what
	// a CREATE of it would carry.
	Raw []byte
	// Controller is "ReplicaSet web-7d9c" for an object with a
	// controller, else "".
	Controller string
}

// List lists Resources in namespaces (none: all), chunk objects per
// request, and returns them sorted by namespace, kind and name. Finished
// pods (Succeeded, Failed) are not running; workloads whose template
// another audited workload writes are audited through it. A list that
// fails is a *ListError (when refused, it names the permission needed),
// never a shorter result.
func List(ctx context.Context, dyn dynamic.Interface, namespaces []string, chunk int64) ([]Object, error) {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var out []Object
	for _, gvr := range Resources {
		for _, ns := range namespaces {
			err := ListChunked(ctx, dyn.Resource(gvr).Namespace(ns), chunk, func(u *unstructured.Unstructured) error {
				if skip(u) {
					return nil
				}
				o, err := objectOf(u)
				if err != nil {
					return err
				}
				out = append(out, o)
				return nil
			})
			if err != nil {
				return nil, listError(gvr, ns, err)
			}
		}
	}
	sortObjects(out)
	return out, nil
}

// Namespaces returns the labels of the cluster's namespaces by name.
func Namespaces(ctx context.Context, dyn dynamic.Interface, chunk int64) (map[string]map[string]string, error) {
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	out := map[string]map[string]string{}
	err := ListChunked(ctx, dyn.Resource(gvr), chunk, func(u *unstructured.Unstructured) error {
		out[u.GetName()] = u.GetLabels()
		return nil
	})
	if err != nil {
		return nil, listError(gvr, "", err)
	}
	return out, nil
}

// ListChunked lists ri page by page (limit chunk, following continue
// tokens) and calls fn for every item.
func ListChunked(ctx context.Context, ri dynamic.ResourceInterface, chunk int64, fn func(*unstructured.Unstructured) error) error {
	opts := metav1.ListOptions{Limit: chunk}
	for {
		list, err := ri.List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range list.Items {
			if err := fn(&list.Items[i]); err != nil {
				return err
			}
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			return nil
		}
	}
}

// ListError is a list that failed: what could not be listed, where.
type ListError struct {
	Resource  string // "cronjobs.batch"
	Namespace string // "": every namespace
	Err       error
}

func (e *ListError) Error() string {
	where := "in every namespace"
	if e.Namespace != "" {
		where = "in namespace " + e.Namespace
	}
	if apierrors.IsForbidden(e.Err) {
		return fmt.Sprintf("list %s %s: forbidden: audit needs list on %s", e.Resource, where, e.Resource)
	}
	return fmt.Sprintf("list %s %s: %v", e.Resource, where, e.Err)
}

func (e *ListError) Unwrap() error { return e.Err }

func listError(gvr schema.GroupVersionResource, ns string, err error) error {
	what := gvr.Resource
	if gvr.Group != "" {
		what += "." + gvr.Group
	}
	return &ListError{Resource: what, Namespace: ns, Err: err}
}

// skip is true for a finished pod, and for a workload whose controller is
// a templateOwner.
func skip(u *unstructured.Unstructured) bool {
	if u.GetKind() == "Pod" {
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return phase == "Succeeded" || phase == "Failed"
	}
	if ref := metav1.GetControllerOfNoCopy(u); ref != nil {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		return err == nil && templateOwners[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
	}
	return false
}

// objectOf is u as an Object.
func objectOf(u *unstructured.Unstructured) (Object, error) {
	obj := u.DeepCopy()
	unstructured.RemoveNestedField(obj.Object, "status")
	unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		return Object{}, fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	o := Object{
		APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
		UID: u.GetUID(), Labels: u.GetLabels(), Raw: raw,
	}
	if ref := metav1.GetControllerOfNoCopy(u); ref != nil {
		o.Controller = ref.Kind + " " + ref.Name
	}
	return o, nil
}
