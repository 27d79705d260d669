//go:build e2e

package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CreateNamespace creates a namespace named prefix-<random> with labels,
// and its default ServiceAccount (there is no controller manager to make
// it, and the ServiceAccount admission plugin refuses pods without it).
func (e *Env) CreateNamespace(ctx context.Context, prefix string, labels map[string]string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	ns, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create namespace %s-*: %w", prefix, err)
	}
	if err := e.createDefaultServiceAccount(ctx, ns.Name); err != nil {
		return "", err
	}
	return ns.Name, nil
}

// CreateNamedNamespace is CreateNamespace with an exact name.
func (e *Env) CreateNamedNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return e.createDefaultServiceAccount(ctx, name)
}

func (e *Env) createDefaultServiceAccount(ctx context.Context, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := e.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create default ServiceAccount in %s: %w", ns, err)
	}
	return nil
}

// waitWebhooks dry-run creates a pod signgate must deny (its image matches
// no policy) until the denial comes from signgate: the API server picks up
// new webhook configurations asynchronously. Then it waits the same way
// for the policy webhook, which fails open: until the API server calls it,
// a policy the gate's compiler rejects is admitted.
func (e *Env) waitWebhooks(ctx context.Context) error {
	if err := e.waitPodWebhooks(ctx); err != nil {
		return err
	}
	return e.waitPolicyWebhook(ctx)
}

// waitPolicyWebhook dry-run creates a ClusterImagePolicy whose glob does
// not compile (the CRD's rules accept it) until PolicyWebhookName denies it.
func (e *Env) waitPolicyWebhook(ctx context.Context) error {
	probe := ClusterImagePolicy("signgate-probe", PolicySpec{Images: []string{"probe.signgate.invalid/[**"}, Static: "fail"})
	want := fmt.Sprintf("admission webhook %q denied the request", PolicyWebhookName)
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	for {
		_, err := e.Dynamic.Resource(ClusterImagePolicyGVR).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the policy webhook: after %s (hang guard), a ClusterImagePolicy with a glob that does not compile still got %v, want a denial from %s", hangGuard, err, PolicyWebhookName)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitPodWebhooks waits for the pod webhooks (see waitWebhooks).
func (e *Env) waitPodWebhooks(ctx context.Context) error {
	ns, err := e.CreateNamespace(ctx, "signgate-probe", nil)
	if err != nil {
		return err
	}
	probe := RestrictedPod("probe", "127.0.0.1:1/signgate/probe@sha256:"+strings.Repeat("0", 64))
	want := fmt.Sprintf("admission webhook %q denied the request", ValidatingWebhookName)
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	for {
		_, err := e.Client.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for webhooks: after %s (hang guard), a pod with an unknown image still got %v, want a denial from %s", hangGuard, err, ValidatingWebhookName)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
