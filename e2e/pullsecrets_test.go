//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/e2e/harness"
)

// pullSecret is a kubernetes.io/dockerconfigjson Secret with user and
// password for host, as `kubectl create secret docker-registry` makes it.
func pullSecret(namespace, name, host, user, password string) *corev1.Secret {
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
		"username": user, "password": password, "auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
	}}})
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}
}

// withPullSecrets is pod with imagePullSecrets names.
func withPullSecrets(pod *corev1.Pod, names ...string) *corev1.Pod {
	for _, n := range names {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: n})
	}
	return pod
}

// The gate reads a password-protected registry (distribution with
// htpasswd) with the pods' own pull secrets (serve --pod-pull-secrets),
// through the real API server; the gate itself has no credentials for it.
// An image pushed there and signed with the real cosign CLI (after
// `cosign login`):
//   - a pod with an imagePullSecret that can read it is admitted and
//     pinned;
//   - the same pod in a namespace without one is denied, saying to add an
//     imagePullSecret, right after the first was admitted;
//   - a pod naming a Secret that exists only in another namespace is
//     denied the same way;
//   - a pod whose service account has the pull secret is admitted;
//   - a pull secret with a wrong password is denied, and admitted once the
//     Secret is rotated to the right one (within the gate's 30 s Secret
//     cache).
func TestPullSecrets(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	priv := env.Private
	cosign := harness.NewCosign(env.Bin.Cosign, t.TempDir())
	if err := cosign.Login(ctx, priv.Host, priv.User, priv.Password); err != nil {
		t.Fatal(err)
	}
	d, err := priv.PushSigned(ctx, cosign, keyA, harness.Classic, repo(t, "app"), "v1")
	if err != nil {
		t.Fatal(err)
	}
	tag := priv.Repo(repo(t, "app")) + ":v1"

	cip := harness.ClusterImagePolicy("e2e-pull-secrets", harness.PolicySpec{Images: []string{priv.Repo(repo(t, "**"))}, Keys: []harness.KeyPair{keyA}})
	if err := env.ApplyPolicy(ctx, cip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, cip.GetName(), metav1.DeleteOptions{})
	})
	secrets := func(s *corev1.Secret) {
		t.Helper()
		if _, err := env.Client.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	withSecret, without, viaAccount, rotated := namespace(t, nil), namespace(t, nil), namespace(t, nil), namespace(t, nil)
	secrets(pullSecret(withSecret, "regcred", priv.Host, priv.User, priv.Password))
	secrets(pullSecret(viaAccount, "account-cred", priv.Host, priv.User, priv.Password))
	secrets(pullSecret(rotated, "regcred", priv.Host, priv.User, "wrong"))
	sa, err := env.Client.CoreV1().ServiceAccounts(viaAccount).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "account-cred"}}
	if _, err := env.Client.CoreV1().ServiceAccounts(viaAccount).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	waitAdmitted(ctx, t, "image of the private registry, with a pull secret",
		dryRunCreatePod(ctx, withSecret, withPullSecrets(harness.RestrictedPod("probe", tag), "regcred")))
	pod, err := createPod(t, withSecret, withPullSecrets(harness.RestrictedPod("app", tag), "regcred"))
	mustAdmit(t, "pod with a pull secret that can read the registry", err)
	if err == nil {
		pinnedAs(t, pod.Spec.Containers[0].Image, tag, d)
	}

	const ask = "add an imagePullSecret that can read it"
	_, err = createPod(t, without, harness.RestrictedPod("app", tag+"@"+d.DigestStr()))
	mustDeny(t, "the same pod without a pull secret, right after", err, d.DigestStr(),
		"the registry denied signgate read access to "+priv.Repo(repo(t, "app")), ask)
	_, err = createPod(t, without, withPullSecrets(harness.RestrictedPod("other-ns-secret", tag+"@"+d.DigestStr()), "regcred"))
	mustDeny(t, "a pod naming a Secret that exists only in another namespace", err, d.DigestStr(),
		"the registry denied signgate read access to "+priv.Repo(repo(t, "app")), ask)
	_, err = createPod(t, without, harness.RestrictedPod("by-tag", tag))
	mustDeny(t, "the tag without a pull secret", err, "must be pinned by digest")

	waitAdmitted(ctx, t, "image of the private registry, with the service account's pull secret",
		dryRunCreatePod(ctx, viaAccount, harness.RestrictedPod("probe", tag)))
	pod, err = createPod(t, viaAccount, harness.RestrictedPod("app", tag))
	mustAdmit(t, "pod whose service account has the pull secret", err)
	if err == nil {
		pinnedAs(t, pod.Spec.Containers[0].Image, tag, d)
	}

	_, err = createPod(t, rotated, withPullSecrets(harness.RestrictedPod("wrong", tag+"@"+d.DigestStr()), "regcred"))
	mustDeny(t, "a pull secret with a wrong password", err, d.DigestStr(),
		`the registry denied read access to `+priv.Repo(repo(t, "app"))+` with imagePullSecrets "regcred" of namespace `+rotated, ask)
	if _, err := env.Client.CoreV1().Secrets(rotated).Update(ctx, pullSecret(rotated, "regcred", priv.Host, priv.User, priv.Password), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAdmitted(ctx, t, "image of the private registry, after the pull secret was rotated",
		dryRunCreatePod(ctx, rotated, withPullSecrets(harness.RestrictedPod("rotated", tag+"@"+d.DigestStr()), "regcred")))
}
