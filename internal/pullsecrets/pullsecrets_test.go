package pullsecrets_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/pullsecrets"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// dockerConfig is a kubernetes.io/dockerconfigjson Secret giving
// user:pass for host.
func dockerConfig(namespace, name, host, user, pass string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"username": user, "password": pass, "auth": auth}}})
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1", UID: types.UID(namespace + "-" + name)},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}
}

// basicAuth makes the registry need user:pass on every request.
func basicAuth(user, pass string) registrytest.Fault {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return func(w http.ResponseWriter, req *http.Request) bool {
		if req.Header.Get("Authorization") == want {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
		http.Error(w, "denied", http.StatusUnauthorized)
		return true
	}
}

// TestCredential: the pod's pull secrets and its service account's, read
// from the pod's namespace only, cached.
func TestCredential(t *testing.T) {
	t.Parallel()
	const host = "registry.example"
	kube := kubefake.NewClientset(
		dockerConfig("a", "regcred", host, "team-a", "s3cret"),
		dockerConfig("a", "from-sa", host, "team-a", "s3cret"),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "builder"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "from-sa"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "default"}},
	)
	s := pullsecrets.New(kube, pullsecrets.Options{})
	ctx := t.Context()

	c, err := s.Credential(ctx, "a", "", []string{"regcred", "missing"})
	if err != nil || c == nil || c.Name != `imagePullSecrets "regcred" of namespace a` {
		t.Fatalf("pod's secret: %+v, %v", c, err)
	}
	c, err = s.Credential(ctx, "a", "builder", nil)
	if err != nil || c == nil || c.Name != `imagePullSecrets "from-sa" of namespace a (with service account builder's)` {
		t.Fatalf("service account's secret: %+v, %v", c, err)
	}
	// Namespace b names a Secret that exists only in a: it never gets a's.
	if c, err := s.Credential(ctx, "b", "", []string{"regcred"}); err != nil || c != nil {
		t.Errorf("b naming a's secret: %+v, %v; want none", c, err)
	}

	// A pod naming thousands of Secrets costs at most MaxPullSecrets reads.
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf("s%d", i)
	}
	n := len(kube.Actions())
	if _, err := s.Credential(ctx, "b", "", many); err != nil {
		t.Fatal(err)
	}
	if got := len(kube.Actions()) - n; got > pullsecrets.MaxPullSecrets+1 { // + the service account
		t.Errorf("5000 pull secret names made %d API reads, want at most %d", got, pullsecrets.MaxPullSecrets+1)
	}

	n = len(kube.Actions())
	for range 3 {
		if _, err := s.Credential(ctx, "a", "", []string{"regcred"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(kube.Actions()) - n; got != 0 {
		t.Errorf("cached reviews made %d API calls", got)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

var yes, no = true, false

func podReview(t *testing.T, namespace, image string, pullSecrets ...string) *admissionv1.AdmissionRequest {
	t.Helper()
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: namespace},
		Spec: corev1.PodSpec{ // restricted
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: image, SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}}},
		},
	}
	for _, s := range pullSecrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: namespace, Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: raw},
	}
}

// TestGateWithPullSecrets: on a registry that needs credentials the gate
// does not have, a pod of namespace a with an imagePullSecret that can
// read it is pinned and admitted; the same pod in namespace b, without
// one, is denied right after — neither the tag's digest nor the verdict
// a's credentials learned is used for b — with a message saying what to
// do; one in b naming a Secret that exists only in a is denied the same
// way.
func TestGateWithPullSecrets(t *testing.T) {
	t.Parallel()
	signer := registrytest.NewSigner(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, signer, d, registrytest.Classic)
	reg.SetFault(basicAuth("team-a", "s3cret"))

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "policy.yaml"), "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: team}\nspec:\n"+
		"  images: [{glob: \""+reg.Host+"/**\"}]\n  authorities:\n  - name: ci\n    key:\n      data: |\n        "+
		strings.ReplaceAll(strings.TrimSpace(string(signer.PublicPEM)), "\n", "\n        ")+"\n")
	src, err := policy.NewFileSource(dir, policy.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{InsecureRegistries: []string{reg.Host}, AllowedHosts: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	kube := kubefake.NewClientset(dockerConfig("a", "regcred", reg.Host, "team-a", "s3cret"))
	gate, err := admission.NewGate(admission.Options{Verifier: v, Policies: src, Credentials: pullsecrets.New(kube, pullsecrets.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tag := reg.Host + "/team/app:v1"

	m := gate.Mutate(ctx, podReview(t, "a", tag, "regcred"))
	if !m.Allowed || !strings.Contains(string(m.Patch), d.DigestStr()) {
		t.Fatalf("mutate in a: allowed %v, patch %s, warnings %v; want pinned to %s", m.Allowed, m.Patch, m.Warnings, d.DigestStr())
	}
	if r := gate.Validate(ctx, podReview(t, "a", tag+"@"+d.DigestStr(), "regcred")); !r.Allowed {
		t.Fatalf("validate in a: %v", r.Result)
	}

	for _, tc := range []struct {
		name    string
		secrets []string
	}{{"no pull secret", nil}, {"a secret that exists only in a", []string{"regcred"}}} {
		m := gate.Mutate(ctx, podReview(t, "b", tag, tc.secrets...))
		if len(m.Patch) != 0 {
			t.Errorf("%s: mutate in b pinned the tag a resolved: %s", tc.name, m.Patch)
		}
		r := gate.Validate(ctx, podReview(t, "b", tag+"@"+d.DigestStr(), tc.secrets...))
		want := "the registry denied signgate read access to " + reg.Host + "/team/app"
		if r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, want) || !strings.Contains(r.Result.Message, "add an imagePullSecret that can read it") {
			t.Errorf("%s: validate in b = allowed %v, %v; want denied: %q … add an imagePullSecret", tc.name, r.Allowed, r.Result, want)
		}
		// The mutating webhook's warning: the tag's resolution was denied
		// with the gate's own credentials, and it says what to do.
		want = "registry " + reg.Host + " denied access (HTTP 401) with the gate's own credentials"
		if w := strings.Join(m.Warnings, "\n"); !strings.Contains(w, want) || !strings.Contains(w, "add an imagePullSecret that can read it") {
			t.Errorf("%s: mutate warnings in b = %q; want %q … add an imagePullSecret", tc.name, w, want)
		}
	}
}
