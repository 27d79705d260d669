//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/e2e/harness"
)

// TestRegistryMirror: a gate configured with registry.mirrors reads an
// image's signature from the mirror while the original registry is down,
// and decides on the original name (the policy trusts the original
// registry; the pod names it). An image the mirror does not hold falls
// back to the original, which is down: denied, with "retry". The original
// is a registry of the test's own (the suite's are shared), as is the gate
// (the suite's has no mirrors); reviews are posted to that gate directly.
func TestRegistryMirror(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	orig, err := harness.StartRegistry(ctx, t, env.Bin.Registry, t.TempDir(), "mirror-original")
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := harness.StartRegistry(ctx, t, env.Bin.Registry, t.TempDir(), "mirror")
	if err != nil {
		t.Fatal(err)
	}
	r := repo(t, "app")
	mirrored := pushSigned(t, orig, keyA, harness.Classic, r)
	copyToMirror(ctx, t, mirrored, mirror.Repo(r))
	notMirrored := pushSigned(t, orig, keyA, harness.Classic, repo(t, "other"))

	gate := startMirrorGate(ctx, t, orig.Host, mirror.Host)
	ns := namespace(t, nil)
	if err := env.ApplyPolicy(ctx, trustPolicy(ns, orig, keyA)); err != nil {
		t.Fatal(err)
	}
	orig.Stop()

	// The gate's informer gets the policy in its own time: until then the
	// image is unmatched (denied); wait for the allow.
	var last admissionv1.AdmissionResponse
	waitFor(ctx, t, "the mirrored image admitted through the mirror", func() (bool, error) {
		last = review(ctx, t, gate, ns, mirrored.String())
		return last.Allowed, fmt.Errorf("denied: %s", resultMessage(last))
	})
	t.Logf("admitted %s with the original down", mirrored)

	last = review(ctx, t, gate, ns, notMirrored.String())
	msg := resultMessage(last)
	t.Logf("image not on the mirror: allowed=%v: %s", last.Allowed, msg)
	if last.Allowed || !strings.Contains(msg, "retry") || !strings.Contains(msg, orig.Host) {
		t.Errorf("image not on the mirror, original down: allowed=%v, message %q; want denied naming %s with \"retry\"", last.Allowed, msg, orig.Host)
	}
}

// copyToMirror copies d and its classic signature (the sha256-<hex>.sig
// tag) to the repository dst, as a registry mirror holds them.
func copyToMirror(ctx context.Context, t *testing.T, d name.Digest, dst string) {
	t.Helper()
	sig := strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig"
	for _, pair := range [][2]string{
		{d.String(), dst + "@" + d.DigestStr()},
		{d.Context().String() + ":" + sig, dst + ":" + sig},
	} {
		src, err := name.ParseReference(pair[0], name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		to, err := name.ParseReference(pair[1], name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(src, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("copy %s: %v", src, err)
		}
		if err := remote.Write(to, img, remote.WithContext(ctx)); err != nil {
			t.Fatalf("copy %s to %s: %v", src, to, err)
		}
	}
}

// startMirrorGate starts a gate with the suite gate's configuration plus
// registry.mirrors {orig: [mirror]}, both hosts reachable over plain HTTP
// on loopback.
func startMirrorGate(ctx context.Context, t *testing.T, orig, mirror string) *harness.Signgate {
	t.Helper()
	b, err := os.ReadFile(env.Signgate.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	config := string(b)
	for old, add := range map[string]string{
		"\nregistry:\n":             fmt.Sprintf("  mirrors:\n    %q: [%q]\n", orig, mirror),
		"\n  insecureRegistries:\n": fmt.Sprintf("    - %q\n    - %q\n", orig, mirror),
		"\n  allowedHosts:\n":       fmt.Sprintf("    - %q\n    - %q\n", orig, mirror),
	} {
		if strings.Count(config, old) != 1 {
			t.Fatalf("the suite's gate configuration has no single %q line to extend:\n%s", strings.TrimSpace(old), config)
		}
		config = strings.Replace(config, old, old+add, 1)
	}
	gate, err := harness.StartSigngate(ctx, t, t.TempDir(), env.CA, harness.SigngateOptions{
		Bin:        env.Bin.Signgate,
		Kubeconfig: env.APIServer.Kubeconfig,
		Config:     []byte(config),
	})
	if err != nil {
		t.Fatal(err)
	}
	return gate
}

// review posts the AdmissionReview of a dry-run CREATE of a restricted
// pod running image in ns to gate's /validate and returns the response.
func review(ctx context.Context, t *testing.T, gate *harness.Signgate, ns, image string) admissionv1.AdmissionResponse {
	t.Helper()
	pod := harness.RestrictedPod("app", image)
	pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	pod.Namespace = ns
	obj, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := admission.KindOf("v1", "Pod")
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Request:  admission.DryRunCreate(k, ns, pod.Name, obj, types.UID("e2e-mirror"), "e2e"),
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CA.CertPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gate.URL+"/validate", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s/validate: %v", gate.URL, err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("POST %s/validate: %s: no AdmissionReview response (%v)", gate.URL, resp.Status, err)
	}
	return *out.Response
}

func resultMessage(r admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return ""
	}
	return r.Result.Message
}
