//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/signgate/signgate/e2e/harness"
)

// chartGateLabel scopes the chart's webhook configurations in
// TestOwnImageThroughChart to the test's namespace (webhook.namespaceSelector);
// its value is the release name.
const chartGateLabel = "e2e.signgate.dev/chart-gate"

// chartPodValidatingWebhook is the chart's validating pod webhook, as the API
// server names it in denials.
const chartPodValidatingWebhook = "pods.validate.signgate.dev"

// The gate's own image, built the documented way and signed with the real
// cosign CLI, is admitted through a second gate that the Helm chart
// configures and registers:
//
//  1. `make image` (ko) builds the gate into the suite's registry as
//     HOST/signgate; cosign signs the digest with key A.
//  2. A second gate runs the binary taken out of that image, with the
//     chart's rendered ConfigMap config.yaml (loopback registry allowed
//     through config.registry.insecureRegistries and allowedHosts) as its
//     configuration, verbatim.
//  3. The chart's rendered webhook configurations point at it
//     (webhook.url, webhook.caBundle) and are registered for real.
//  4. In the test's namespace, trusting key A for HOST/signgate: a pod
//     running the image by tag is admitted and stored pinned to the built
//     digest, and the chart's gate answered it; a pod running an unsigned
//     image of the same repository is denied, and the chart's gate denied
//     it; the chart's Deployment running the built image is admitted and
//     stored restricted.
//
// Parallel-safe: the webhook configurations are named after a unique
// release and select only namespaces labelled chartGateLabel=<release> (the
// test's own), so the fail-closed webhooks never see another test's
// requests; they are deleted before the second gate stops (cleanups are
// LIFO). The repository HOST/signgate belongs to this test. The suite's
// main gate still gates the namespace too (it gates everything but
// kube-system): one ImagePolicy serves both gates, which read it from the
// same API server.
func TestOwnImageThroughChart(t *testing.T) {
	t.Parallel()
	// ko compiles the gate (1-2 minutes cold on an idle 2-core machine,
	// several on a busy one): a longer hang guard than testContext's, still
	// well inside `make e2e`'s -timeout 30m.
	ctx, cancel := context.WithTimeout(t.Context(), 5*hangGuard)
	defer cancel()

	reg := env.Registry()
	release := uniqueRelease(t, "sg-own")
	releaseNS := release + "-system" // excluded by the chart; never created
	repo := reg.Repo("signgate")

	// 1. Build and sign.
	t0 := time.Now()
	built, err := harness.BuildGateImage(ctx, env.Root, repo, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("make image: %s (%s)", built, time.Since(t0).Round(time.Millisecond))
	if err := env.Cosign.Sign(ctx, keyA, built, harness.Classic); err != nil {
		t.Fatal(err)
	}
	image, tagRef := podImage(ctx, t, built)
	unsigned, err := reg.PushRandom(ctx, "signgate", "unsigned")
	if err != nil {
		t.Fatal(err)
	}
	unsignedTag := repo + ":unsigned"

	// 2. The second gate: the image's own binary, the chart's config. Like
	// the harness's (harness.GateConfig, RegisterWebhooks), its deadlines
	// are the longest allowed, so a busy machine does not turn an answer
	// into "retry": the API server's 30 s, the registry's 20 s inside it
	// (and, as values.yaml asks, a termination grace above shutdownDelay +
	// webhook.timeoutSeconds).
	values := []string{
		"--set", "webhook.timeoutSeconds=30",
		"--set", "config.registry.timeout=20s",
		"--set", "terminationGracePeriodSeconds=40",
		"--set-json", fmt.Sprintf("config.registry.insecureRegistries=[%q]", reg.Host),
		"--set-json", fmt.Sprintf("config.registry.allowedHosts=[%q]", reg.Host),
		"--set-json", fmt.Sprintf(`webhook.namespaceSelector={"matchLabels":{%q:%q}}`, chartGateLabel, release),
		// The policy webhook selects every namespace and cluster-scoped
		// object, so it cannot be scoped to this test: the harness's gate
		// already checks every policy the suite applies.
		"--set", "webhook.validatePolicies=false",
		"--set", "config.policies.namespacePoliciesCoverImages=true", // the test trusts the gate's key with an ImagePolicy
		"--set", "webhook.caBundle=" + base64.StdEncoding.EncodeToString(env.CA.CertPEM),
		"--set", "image.repository=" + built.Context().Name(),
		"--set", "image.digest=" + built.DigestStr(),
	}
	config := renderedConfig(t, helmTemplate(ctx, t, release, releaseNS, values, "configmap"))
	if !strings.Contains(config, reg.Host) {
		t.Fatalf("rendered config.yaml does not name the registry %s:\n%s", reg.Host, config)
	}
	gateDir := t.TempDir()
	gateBin, err := harness.ExtractEntrypoint(ctx, built, gateDir)
	if err != nil {
		t.Fatal(err)
	}
	gate, err := harness.StartSigngate(ctx, t, gateDir, env.CA, harness.SigngateOptions{
		Bin:        gateBin,
		Kubeconfig: env.APIServer.Kubeconfig,
		Config:     []byte(config),
		ExtraArgs:  []string{"--namespace=" + releaseNS},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(gate.ConfigPath); err != nil || string(got) != config {
		t.Fatalf("the chart gate's config file is not the rendered config.yaml (err %v)", err)
	}
	t.Logf("chart gate (%s from the image) ready at %s", gateBin, gate.URL)

	// 3. The chart's webhook configurations, for real, scoped.
	ns, err := env.CreateNamespace(ctx, "ownimage", map[string]string{chartGateLabel: release})
	if err != nil {
		t.Fatal(err)
	}
	hooks := helmTemplate(ctx, t, release, releaseNS, append(values, "--set", "webhook.url="+gate.URL),
		"mutatingwebhookconfiguration", "validatingwebhookconfiguration")
	checkScoped(t, hooks, release)
	t.Cleanup(func() { deleteWebhookConfigurations(t, hooks) }) // runs before the gate stops
	if err := env.Apply(ctx, hooks...); err != nil {
		t.Fatal(err)
	}
	waitChartGate(ctx, t, gate, ns, unsigned.String())

	// 4. Trust key A for the gate's repository; wait until both gates see it.
	p := harness.ImagePolicy(ns, "gate-image", harness.PolicySpec{Images: []string{built.Context().Name()}, Keys: []harness.KeyPair{keyA}})
	if err := env.ApplyPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	pods := env.Client.CoreV1().Pods(ns)
	waitAdmitted(ctx, t, "pod running the gate's own image "+image+" by both gates", dryRunCreatePod(ctx, ns, harness.RestrictedPod("gate", image)))

	// The gate's image by tag: admitted, pinned to the built digest, and
	// the chart's gate allowed it.
	allowedPods := map[string]string{"webhook": "validate", "operation": "CREATE", "kind": "Pod", "decision": "allowed"}
	before := counter(ctx, t, gate, allowedPods)
	got, err := pods.Create(ctx, harness.RestrictedPod("gate", image), metav1.CreateOptions{})
	mustAdmit(t, "pod running the gate's own image "+image, err)
	if tagRef != "" {
		pinnedAs(t, got.Spec.Containers[0].Image, tagRef, built)
	} else if got.Spec.Containers[0].Image != built.String() {
		t.Errorf("stored image = %q, want %q", got.Spec.Containers[0].Image, built)
	}
	waitCounter(ctx, t, gate, "allowed pod CREATEs", allowedPods, before)

	// An unsigned image of the same repository: denied, by the chart's gate
	// among others. The API server calls validating webhooks in parallel
	// and reports the first denial, which may be the main gate's; the chart
	// gate's own denial is read from its log.
	_, err = pods.Create(ctx, harness.RestrictedPod("unsigned", unsignedTag), metav1.CreateOptions{})
	msg := mustDenyByEither(t, "pod running an unsigned image "+unsignedTag, err)
	want := []string{"spec.containers[0].image", "sign it with a key trusted in namespace " + ns}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("denial %q does not contain %q", msg, w)
		}
	}
	waitLogLine(ctx, t, gate, append([]string{"msg=admission", "webhook=validate", "namespace=" + ns, "name=unsigned", "decision=denied"}, want...)...)

	// The chart's Deployment running the built image.
	allowedDeployments := map[string]string{"webhook": "validate", "operation": "CREATE", "kind": "Deployment", "decision": "allowed"}
	before = counter(ctx, t, gate, allowedDeployments)
	dep := renderedDeployment(t, helmTemplate(ctx, t, release, releaseNS, values, "deployment"))
	dep.Namespace = ns
	deployments := env.Client.AppsV1().Deployments(ns)
	if _, err := deployments.Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the chart's Deployment running %s in %s: %v", built, ns, err)
	}
	stored, err := deployments.Get(ctx, dep.Name, getOpts)
	if err != nil {
		t.Fatal(err)
	}
	if img := stored.Spec.Template.Spec.Containers[0].Image; img != built.String() {
		t.Errorf("Deployment image = %q, want %q", img, built)
	}
	checkRestricted(t, stored)
	waitCounter(ctx, t, gate, "allowed Deployment CREATEs", allowedDeployments, before)

	// Scoping: a namespace without the label never reaches the chart gate.
	//
	// The gate counts a review just after answering it, so "not counted
	// yet" proves nothing by itself. A barrier replaces waiting: after the
	// unscoped Pod request has returned, a dry-run Deployment create in
	// the labelled namespace, which the chart gate must answer. The API
	// server sends the barrier only after the unscoped request is over,
	// and the gate records a review right after writing its answer, in the
	// same handler: a leaked Pod review is recorded before the barrier's
	// (its handler would have to stall for the barrier's whole round trip
	// through the API server otherwise). So once the barrier's validating
	// review is counted, every series but the Deployment ones must be
	// where it was: a Pod review for the unscoped request, from either of
	// the chart's webhooks, would show.
	//
	// Nothing else reaches the chart gate meanwhile, so equality is exact:
	// its webhooks select only namespaces labelled chartGateLabel=<this
	// test's unique release>, which only ns is; the parallel tests use
	// unlabelled namespaces of their own; this test's earlier requests have
	// all returned (and been counted: waitCounter, waitLogLine); there is
	// no controller manager to create pods from the stored Deployment.
	deploymentsSeen := map[string]string{"kind": "Deployment"}
	barrierSeen := map[string]string{"kind": "Deployment", "webhook": "validate"}
	notSent := func(what string, create func() error) {
		t.Helper()
		total, deploymentsBefore := counter(ctx, t, gate, nil), counter(ctx, t, gate, deploymentsSeen)
		barrierBefore := counter(ctx, t, gate, barrierSeen)
		_ = create() // decided by the suite's gate, or admitted: not the point
		barrier := harness.RestrictedDeployment("barrier", built.String())
		_, err := deployments.Create(ctx, barrier, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		mustAdmit(t, "barrier: dry-run Deployment running "+built.String()+" in the labelled namespace "+ns, err)
		waitCounter(ctx, t, gate, "validated Deployment CREATEs (the barrier)", barrierSeen, barrierBefore)
		others := (counter(ctx, t, gate, nil) - total) - (counter(ctx, t, gate, deploymentsSeen) - deploymentsBefore)
		if others != 0 {
			t.Errorf("chart gate answered %v reviews besides the barrier Deployment, for %s", others, what)
		}
	}
	other := namespace(t, nil)
	notSent(fmt.Sprintf("the pod in namespace %s, which lacks %s=%s", other, chartGateLabel, release), func() error {
		_, err := env.Client.CoreV1().Pods(other).Create(ctx, harness.RestrictedPod("unscoped", unsigned.String()), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	})

	// The typical system namespaces a default install exempts
	// (config.exemptNamespaces, rendered into the webhooks' namespaceSelector)
	// are never sent to the gate, even labelled for it: a privileged,
	// unsigned pod there costs the gate nothing. These namespaces belong
	// to this test (nothing else in the suite creates them).
	for _, sys := range []string{"monitoring", "ingress-nginx", "cert-manager"} {
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sys, Labels: map[string]string{chartGateLabel: release}}}
		if _, err := env.Client.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create namespace %s: %v", sys, err)
		}
		notSent("a privileged pod in the system namespace "+sys, func() error {
			_, err := env.Client.CoreV1().Pods(sys).Create(ctx, harness.PrivilegedPod("system", unsigned.String()), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		})
	}
}

// podImage is how the test's pod names the built image: by the tag ko
// pushed (latest) when it points at d, with tagRef set for pinnedAs;
// otherwise by digest, with tagRef "".
func podImage(ctx context.Context, t *testing.T, d name.Digest) (image, tagRef string) {
	t.Helper()
	tag, err := name.NewTag(d.Context().Name()+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag, remote.WithContext(ctx))
	if err != nil || desc.Digest.String() != d.DigestStr() {
		t.Logf("%s does not point at %s (%v): the pod names the digest", tag, d.DigestStr(), err)
		return d.String(), ""
	}
	return tag.String(), tag.String()
}

// checkScoped fails t now, before anything is registered, unless objs are
// exactly the two webhook configurations, named after release, and every
// webhook selects only namespaces labelled chartGateLabel=release: a
// fail-closed webhook without that would deny every parallel test's pods.
func checkScoped(t *testing.T, objs []*unstructured.Unstructured, release string) {
	t.Helper()
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
		if !strings.HasPrefix(o.GetName(), release) {
			t.Fatalf("%s %s is not named after the release %s", o.GetKind(), o.GetName(), release)
		}
		webhooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		if len(webhooks) == 0 {
			t.Fatalf("%s %s has no webhooks", o.GetKind(), o.GetName())
		}
		for _, w := range webhooks {
			w, _ := w.(map[string]any)
			label, _, _ := unstructured.NestedString(w, "namespaceSelector", "matchLabels", chartGateLabel)
			if label != release {
				t.Fatalf("%s %s: webhook %v selects namespaces without %s=%s: %v", o.GetKind(), o.GetName(), w["name"], chartGateLabel, release, w["namespaceSelector"])
			}
		}
	}
	if len(objs) != 2 || !kinds["MutatingWebhookConfiguration"] || !kinds["ValidatingWebhookConfiguration"] {
		t.Fatalf("rendered webhook templates: %v, want one Mutating- and one ValidatingWebhookConfiguration", kinds)
	}
}

// deleteWebhookConfigurations deletes the rendered webhook configurations
// objs from the API server.
func deleteWebhookConfigurations(t *testing.T, objs []*unstructured.Unstructured) {
	// t.Context() is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	ar := env.Client.AdmissionregistrationV1()
	for _, o := range objs {
		var err error
		switch o.GetKind() {
		case "MutatingWebhookConfiguration":
			err = ar.MutatingWebhookConfigurations().Delete(ctx, o.GetName(), metav1.DeleteOptions{})
		case "ValidatingWebhookConfiguration":
			err = ar.ValidatingWebhookConfigurations().Delete(ctx, o.GetName(), metav1.DeleteOptions{})
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// waitChartGate dry-run creates a pod running image (pinned, so no mutating
// webhook has work) in ns until the chart gate's validating webhook has
// answered one: the API server picks up new webhook configurations
// asynchronously.
func waitChartGate(ctx context.Context, t *testing.T, gate *harness.Signgate, ns, image string) {
	t.Helper()
	validated := map[string]string{"webhook": "validate"}
	before := counter(ctx, t, gate, validated)
	probe := dryRunCreatePod(ctx, ns, harness.RestrictedPod("probe", image))
	waitFor(ctx, t, "the API server to call the chart gate's validating webhook for namespace "+ns+" (dry-run pod creates)", func() (bool, error) {
		err := probe()
		return counter(ctx, t, gate, validated) > before, fmt.Errorf("last dry run: %v", err)
	})
}

// mustDenyByEither fails t unless err is a denial by the main gate's or the
// chart gate's validating webhook; it returns the message.
func mustDenyByEither(t *testing.T, what string, err error) string {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: admitted, want denied", what)
	}
	msg := err.Error()
	t.Logf("%s: denied: %s", what, msg)
	for _, hook := range []string{harness.ValidatingWebhookName, chartPodValidatingWebhook} {
		if strings.Contains(msg, fmt.Sprintf("admission webhook %q denied the request", hook)) {
			return msg
		}
	}
	t.Fatalf("%s: %q is not a denial by %s or %s", what, msg, harness.ValidatingWebhookName, chartPodValidatingWebhook)
	return ""
}

// counter is gate's signgate_admission_requests_total summed over the
// series with labels.
func counter(ctx context.Context, t *testing.T, gate *harness.Signgate, labels map[string]string) float64 {
	t.Helper()
	v, err := gate.Counter(ctx, "signgate_admission_requests_total", labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitCounter waits until the counter with labels rises above before: the
// request was answered by the chart gate, which counts a review just after
// answering it. If the gate never answered, only hangGuard ends the wait.
func waitCounter(ctx context.Context, t *testing.T, gate *harness.Signgate, what string, labels map[string]string, before float64) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("the chart gate's count of %s to rise above %v (it answered the request)", what, before), func() (bool, error) {
		now := counter(ctx, t, gate, labels)
		return now > before, fmt.Errorf("%s = %v", what, now)
	})
}

// waitLogLine waits until a line of gate's log contains every one of wants
// (the gate logs a review just after answering it).
func waitLogLine(ctx context.Context, t *testing.T, gate *harness.Signgate, wants ...string) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("a line of the chart gate's log %s with all of %q", gate.Proc.LogPath, wants), func() (bool, error) {
		b, err := os.ReadFile(gate.Proc.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if containsAll(line, wants) {
				t.Logf("chart gate: %s", line)
				return true, nil
			}
		}
		return false, fmt.Errorf("no such line in %d bytes", len(b))
	})
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
