//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/signgate/signgate/e2e/harness"
)

// recordEnv names the directory TestRecordReview writes its recordings to
// (relative paths are taken from the repository root); unset, the test is
// skipped. The load tool's recordings are made with
//
//	SIGNGATE_RECORD_REVIEW=e2e/load/testdata go test -tags e2e -count=1 -run TestRecordReview -v ./e2e/
const recordEnv = "SIGNGATE_RECORD_REVIEW"

// recordedSizes are the container counts of the pods the load tool sends
// (e2e/load: 1, 3 and 10 in the comparison, 16 in -oversized).
var recordedSizes = []int{1, 3, 10, 16}

// Placeholders of a recording (e2e/load/testdata/README.md): the load tool
// puts its own review uid, namespace and image references in their place.
const (
	placeholderUID       = "{{UID}}"
	placeholderNamespace = "{{NAMESPACE}}"
	placeholderImage     = "{{IMAGE_%d}}"
)

// TestRecordReview records the AdmissionReview that the real kube-apiserver
// sends a validating webhook for the CREATE of a restricted-compliant pod
// the way the ReplicaSet controller makes it (its identity, its field
// manager, owned by a ReplicaSet), after defaulting, the admission plugins
// and signgate's mutating webhook: one recording per size in
// recordedSizes. The recorder is an HTTPS webhook of this test that stores
// the body and allows; it is registered for the test's namespace only.
// Review uid, namespace and images are replaced by placeholders, and the
// test fails if anything of the run's registry is left.
func TestRecordReview(t *testing.T) {
	out := os.Getenv(recordEnv)
	if out == "" {
		t.Skipf("set %s=<dir> to record AdmissionReviews for e2e/load", recordEnv)
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(env.Root, out)
	}
	ctx := testContext(t)
	reg := env.Registry()
	ns := namespace(t, nil)
	trust(t, ns, reg, keyA)

	rec := startRecorder(t)
	registerRecorder(ctx, t, ns, rec.url)

	// The ReplicaSet controller creates pods as its ServiceAccount with
	// field manager kube-controller-manager; the API server's bootstrap
	// RBAC lets that identity create pods.
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:kube-system:replicaset-controller",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system"},
	}
	controller, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	createOpts := metav1.CreateOptions{FieldManager: "kube-controller-manager"}

	var images []string
	for i := range recordedSizes[len(recordedSizes)-1] {
		d := pushSigned(t, reg, keyA, harness.Classic, repo(t, fmt.Sprintf("app-%d", i)))
		// The form the validating webhook sees after signgate pins a tag.
		images = append(images, d.Context().Tag("v1").String()+"@"+d.DigestStr())
	}

	// The API server picks up the recorder's configuration asynchronously:
	// dry runs until the recorder is called.
	waitFor(ctx, t, "the recorder to be called", func() (bool, error) {
		_, err := controller.CoreV1().Pods(ns).Create(ctx, recordPod(ns, images[:1]), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: createOpts.FieldManager})
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
		return rec.take() != nil, nil
	})

	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range recordedSizes {
		pod, err := controller.CoreV1().Pods(ns).Create(ctx, recordPod(ns, images[:n]), createOpts)
		if err != nil {
			t.Fatalf("create the %d-container pod: %v", n, err)
		}
		body := rec.take()
		if body == nil {
			t.Fatalf("the recorder saw no review for pod %s", pod.Name)
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil {
			t.Fatalf("recorded review: %v", err)
		}
		if review.Request == nil || review.Request.Operation != admissionv1.Create || review.Request.Name != pod.Name {
			t.Fatalf("recorded review is not the CREATE of %s: %.300s", pod.Name, body)
		}
		s := string(body)
		s = strings.Replace(s, quote(string(review.Request.UID)), quote(placeholderUID), 1)
		s = strings.ReplaceAll(s, quote(ns), quote(placeholderNamespace))
		for i, img := range images[:n] {
			s = strings.ReplaceAll(s, quote(img), quote(fmt.Sprintf(placeholderImage, i)))
		}
		for _, leak := range append([]string{reg.Host, "sha256:", ns}, images[:n]...) {
			if strings.Contains(s, leak) {
				t.Fatalf("%d-container recording still contains %q after the placeholders: %s", n, leak, s)
			}
		}
		file := filepath.Join(out, recordingName(n))
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded the CREATE review of %d-container pod %s/%s: %d bytes, %s", n, ns, pod.Name, len(body), file)
	}
}

// recordingName is the file name of the recording with n containers
// (the load tool reads the same names).
func recordingName(n int) string {
	if n == 1 {
		return "review-pod-1-container.json"
	}
	return fmt.Sprintf("review-pod-%d-containers.json", n)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// recordPod is a restricted-compliant pod of a Deployment "web" the way
// the ReplicaSet controller posts it: one container per image with
// arguments, env, a port, a readiness probe, resource requests and limits,
// a read-only root filesystem, RuntimeDefault seccomp, non-root and all
// capabilities dropped; an emptyDir and a ConfigMap volume. The API server
// adds the rest (defaults, the service-account token volume, tolerations,
// managedFields).
func recordPod(ns string, images []string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-7c9f8d6b5-",
			Namespace:    ns,
			Labels:       map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop", "pod-template-hash": "7c9f8d6b5"},
			Annotations:  map[string]string{"kubectl.kubernetes.io/default-container": "c0"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7c9f8d6b5",
				UID: types.UID("5f0c2a4e-1b7d-4c1e-8f3a-2d9b6e7c4a10"), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("64Mi"))}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}},
			},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](10001),
				RunAsGroup:     ptr.To[int64](10001),
				FSGroup:        ptr.To[int64](10001),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
	for i, image := range images {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name:  fmt.Sprintf("c%d", i),
			Image: image,
			Args:  []string{fmt.Sprintf("--listen=:%d", 8080+i), "--log-format=json"},
			Ports: []corev1.ContainerPort{{Name: fmt.Sprintf("http-%d", i), ContainerPort: int32(8080 + i)}},
			Env: []corev1.EnvVar{
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "LOG_LEVEL", Value: "info"},
			},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "tmp", MountPath: "/tmp"},
				{Name: "config", MountPath: "/etc/web", ReadOnly: true},
			},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(int32(8080 + i))}},
			},
			ImagePullPolicy: corev1.PullIfNotPresent,
			SecurityContext: &corev1.SecurityContext{
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				RunAsNonRoot:             ptr.To(true),
				ReadOnlyRootFilesystem:   ptr.To(true),
				AllowPrivilegeEscalation: ptr.To(false),
				SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		})
	}
	return pod
}

// recorder is an HTTPS validating webhook that keeps the last body it was
// sent and allows everything.
type recorder struct {
	url  string
	mu   sync.Mutex
	last []byte
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	certFile, keyFile, err := env.CA.WriteServingPair(t.TempDir(), "recorder")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{url: "https://" + l.Addr().String() + "/record"}
	srv := &http.Server{Handler: r, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(l, "", "") //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.last = body
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{
		TypeMeta: review.TypeMeta,
		Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true},
	})
}

// take returns the last recorded body and forgets it.
func (r *recorder) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.last
	r.last = nil
	return b
}

// registerRecorder registers url as a validating webhook for pod CREATEs in
// ns only, and deletes the configuration when t ends.
func registerRecorder(ctx context.Context, t *testing.T, ns, url string) {
	t.Helper()
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-record-" + ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "record.e2e.signgate.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(url), CABundle: env.CA.CertPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](30),
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"kubernetes.io/metadata.name": ns,
			}},
		}},
	}
	ar := env.Client.AdmissionregistrationV1()
	if _, err := ar.ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ar.ValidatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
}
