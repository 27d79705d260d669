//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/e2e/harness"
)

// TestPrivateRegistryCA: a registry serving HTTPS with a certificate from
// a private CA (distribution's http.tls) is read by a gate whose
// registry.certificateAuthorities names that CA for the registry, and not
// by a gate without it, whose denial says the certificate is not trusted
// and names the setting. Neither gate lists the registry in
// insecureRegistries. Both gates are asked directly (an AdmissionReview
// POSTed to /validate), not through the API server, whose webhooks call
// the environment's gate.
func TestPrivateRegistryCA(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	regCA, err := harness.NewCA() // not the environment's CA
	if err != nil {
		t.Fatal(err)
	}
	reg, err := harness.StartTLSRegistry(ctx, t, env.Bin.Registry, dir, "registry-tls", regCA)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "registry-ca.pem")
	if err := os.WriteFile(caFile, regCA.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	d := pushSigned(t, reg, keyA, harness.Classic, repo(t, "app"))
	ns := namespace(t, nil)
	if err := env.ApplyPolicy(ctx, trustPolicy(ns, reg, keyA)); err != nil {
		t.Fatal(err)
	}

	gateConfig := func(withCA bool) []byte {
		var b strings.Builder
		b.WriteString("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nunmatchedImages: deny\n")
		b.WriteString("policies:\n  namespacePoliciesCoverImages: true\n")
		fmt.Fprintf(&b, "registry:\n  timeout: 20s\n  allowedHosts: [%q]\n", reg.Host)
		if withCA {
			fmt.Fprintf(&b, "  certificateAuthorities:\n    %q: %s\n", reg.Host, caFile)
		}
		return []byte(b.String())
	}
	startGate := func(name string, withCA bool) *harness.Signgate {
		gdir := filepath.Join(dir, name)
		if err := os.MkdirAll(gdir, 0o755); err != nil {
			t.Fatal(err)
		}
		s, err := harness.StartSigngate(ctx, t, gdir, env.CA, harness.SigngateOptions{
			Bin: env.Bin.Signgate, Kubeconfig: env.APIServer.Kubeconfig, Config: gateConfig(withCA)})
		if err != nil {
			t.Fatalf("start the gate %s: %v", name, err)
		}
		return s
	}
	trusting, other := startGate("gate-with-ca", true), startGate("gate-without-ca", false)

	pod := harness.RestrictedPod("app", d.String())
	// The gates are ready once their informers synced, after the policy
	// was stored: they decide under it from the first review.
	if resp := validate(ctx, t, trusting, ns, pod); !resp.Allowed {
		t.Fatalf("gate with registry.certificateAuthorities for %s: denied %s: %s", reg.Host, d, resp.Result.Message)
	}
	resp := validate(ctx, t, other, ns, pod)
	want := "registry " + reg.Host + " failed TLS verification: the certificate of " + reg.Host +
		" is not signed by a CA signgate trusts for it; set registry.certificateAuthorities for " + reg.Host
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, want) {
		t.Fatalf("gate without the CA: allowed=%v, message %v; want denied with %q", resp.Allowed, resp.Result, want)
	}
	t.Logf("gate without the CA: %s", resp.Result.Message)
}

// validate POSTs a dry-run CREATE of pod in ns to gate's /validate, as
// the API server would, and returns the answer.
func validate(ctx context.Context, t *testing.T, gate *harness.Signgate, ns string, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	pod = pod.DeepCopy()
	pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	pod.Namespace = ns
	obj, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := admission.KindOf("v1", "Pod")
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Request:  admission.DryRunCreate(k, ns, pod.Name, obj, types.UID("e2e-"+pod.Name), "e2e"),
	})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(env.CA.CertPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gate.URL+"/validate", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("POST %s/validate: %v", gate.URL, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s/validate: %s %v: %s", gate.URL, res.Status, err, data)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil || review.Response == nil {
		t.Fatalf("POST %s/validate: no AdmissionReview response (%v): %s", gate.URL, err, data)
	}
	return review.Response
}
