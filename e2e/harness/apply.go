//go:build e2e

package harness

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// Apply creates each object, or updates it when it exists, resolving its
// resource through discovery. Objects of a namespaced kind without a
// namespace go to "default". It is how rendered manifests (for example the
// Helm chart's) are put into the API server.
func (e *Env) Apply(ctx context.Context, objs ...*unstructured.Unstructured) error {
	mapper := e.RESTMapper()
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = e.Dynamic.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() == "" {
				o.SetNamespace("default")
			}
			ri = e.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if err := createOrUpdate(ctx, ri, o); err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, objName(o), err)
		}
	}
	return nil
}

func createOrUpdate(ctx context.Context, ri dynamic.ResourceInterface, o *unstructured.Unstructured) error {
	_, err := ri.Create(ctx, o, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	o = o.DeepCopy()
	o.SetResourceVersion(cur.GetResourceVersion())
	_, err = ri.Update(ctx, o, metav1.UpdateOptions{})
	return err
}

func objName(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

// ApplyPolicy creates or updates an ImagePolicy or ClusterImagePolicy
// built by ImagePolicy / ClusterImagePolicy.
func (e *Env) ApplyPolicy(ctx context.Context, p *unstructured.Unstructured) error {
	var ri dynamic.ResourceInterface
	switch p.GetKind() {
	case "ImagePolicy":
		ri = e.Dynamic.Resource(ImagePolicyGVR).Namespace(p.GetNamespace())
	case "ClusterImagePolicy":
		ri = e.Dynamic.Resource(ClusterImagePolicyGVR)
	default:
		return fmt.Errorf("apply policy %s: kind %q is not a signgate policy", objName(p), p.GetKind())
	}
	if err := createOrUpdate(ctx, ri, p); err != nil {
		return fmt.Errorf("apply %s %s: %w", p.GetKind(), objName(p), err)
	}
	return nil
}
