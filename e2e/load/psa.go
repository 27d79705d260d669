//go:build load

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// namespaceAPI is the smallest part of the Kubernetes API that PSA's webhook
// reads: list, watch and get of Namespaces (its informer keeps them in
// memory, so after sync no request reaches this server during a review).
// It stands in for kube-apiserver so that the comparison measures the
// webhooks and not a control plane sharing the two cores.
type namespaceAPI struct {
	URL string
	srv *http.Server
	ns  []corev1.Namespace
}

func startNamespaceAPI(namespaces ...corev1.Namespace) (*namespaceAPI, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen namespace API: %w", err)
	}
	a := &namespaceAPI{URL: "http://" + l.Addr().String()}
	for _, n := range namespaces {
		n.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
		n.ResourceVersion = "1"
		a.ns = append(a.ns, n)
	}
	a.srv = &http.Server{Handler: a}
	go a.srv.Serve(l) //nolint:errcheck // ends with Close
	return a, nil
}

func (a *namespaceAPI) Close() error { return a.srv.Close() }

func (a *namespaceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/api/v1/namespaces"
	switch {
	case r.URL.Path == prefix && r.URL.Query().Get("watch") == "true":
		a.watch(w, r)
	case r.URL.Path == prefix:
		writeJSON(w, http.StatusOK, corev1.NamespaceList{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NamespaceList"},
			ListMeta: metav1.ListMeta{ResourceVersion: "1"},
			Items:    a.ns,
		})
	case strings.HasPrefix(r.URL.Path, prefix+"/"):
		name := strings.TrimPrefix(r.URL.Path, prefix+"/")
		for _, n := range a.ns {
			if n.Name == name {
				writeJSON(w, http.StatusOK, n)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status:   metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
			Message: fmt.Sprintf("namespaces %q not found", name),
		})
	default:
		writeJSON(w, http.StatusNotFound, metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status:   metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
		})
	}
}

// watch streams the initial events and the end bookmark when asked for them
// (client-go's WatchListClient), then stays open with no further events.
func (a *namespaceAPI) watch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if r.URL.Query().Get("sendInitialEvents") == "true" {
		for _, n := range a.ns {
			_ = enc.Encode(map[string]any{"type": "ADDED", "object": n})
		}
		_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": corev1.Namespace{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1",
				Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
		}})
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	<-r.Context().Done()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// startPSA runs PSA's own webhook (bin/pod-security-webhook) with the
// restricted profile as its default and the namespace API as its cluster.
func startPSA(ctx context.Context, bin, dir string, api *namespaceAPI, tls *serving) (*server, error) {
	kubeconfig := filepath.Join(dir, "psa.kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: load, cluster: {server: %q}}]
users: [{name: load, user: {}}]
contexts: [{name: load, context: {cluster: load, user: load}}]
current-context: load
`, api.URL)), 0o600); err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "psa-config.yaml")
	if err := os.WriteFile(config, []byte(`apiVersion: pod-security.admission.config.k8s.io/v1
kind: PodSecurityConfiguration
defaults:
  enforce: restricted
  enforce-version: latest
  audit: restricted
  audit-version: latest
  warn: restricted
  warn-version: latest
exemptions: {usernames: [], runtimeClasses: [], namespaces: []}
`), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s, err := startServer(ctx, "pod-security-webhook", dir, bin, []string{
		"--kubeconfig", kubeconfig, "--config", config,
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		"--tls-cert-file", tls.CertFile, "--tls-private-key-file", tls.KeyFile,
	}, fmt.Sprintf("https://%s/readyz", hostPort(port)), tls.clientTLS())
	if err != nil {
		return nil, err
	}
	s.URL = "https://" + hostPort(port) + "/"
	return s, nil
}
