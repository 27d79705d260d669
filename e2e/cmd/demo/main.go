//go:build e2e

// Command demo shows a newcomer what signgate does, against the same real
// environment the e2e suite uses: kube-apiserver + etcd, a registry, the
// cosign CLI and `signgate serve`, all on 127.0.0.1. It signs one image,
// then creates three pods — signed (admitted and pinned to its digest),
// unsigned (denied), privileged (denied) — and leaves everything running
// with a KUBECONFIG to explore until Ctrl-C.
//
//	make demo              # interactive
//	DEMO_EXIT=1 make demo  # run through and exit (CI)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/signgate/signgate/e2e/harness"
)

const namespace = "demo"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, os.Getenv("DEMO_EXIT") == "1")
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, exit bool) error {
	s, err := harness.NewSession(&indent{w: out, prefix: "      "}, "signgate-demo-")
	if err != nil {
		return err
	}
	defer s.Close()
	d := &demo{out: out}
	if err := d.show(ctx, s); err != nil {
		s.Fail() // prints the last lines of every component's log
		return err
	}
	if exit {
		d.say("\nDEMO_EXIT=1: stopping everything.")
		return nil
	}
	d.say("\nPress Ctrl-C to stop everything and delete the temp files.")
	<-ctx.Done()
	d.say("\nStopping…")
	return nil
}

type demo struct {
	out  io.Writer
	step int
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) title(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n[%d/5] %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) show(ctx context.Context, s *harness.Session) error {
	d.say("signgate demo: an admission gate that lets only signed, Pod-Security-compliant pods in.")
	d.say("Everything below is real (kube-apiserver, etcd, a registry, the cosign CLI, signgate) and listens on 127.0.0.1 only.")

	d.title("Starting kube-apiserver + etcd, a registry and signgate (about 30 seconds)")
	t0 := time.Now()
	env, err := harness.Start(ctx, s, harness.Options{})
	if err != nil {
		return err
	}
	reg := env.Registry()
	d.say("    up in %s; signgate is registered as a mutating webhook (pins tags to digests)", time.Since(t0).Round(time.Second))
	d.say("    and a validating webhook (checks signatures and Pod Security).")

	d.title("Making a signing key with cosign and pushing two images")
	key, err := env.Cosign.GenerateKeyPair(ctx, env.Dir, "demo")
	if err != nil {
		return err
	}
	d.say("    $ cosign generate-key-pair            -> %s", key.PublicKey)
	signed, err := reg.PushSigned(ctx, env.Cosign, key, harness.Classic, "demo/hello", "v1")
	if err != nil {
		return err
	}
	unsigned, err := reg.PushRandom(ctx, "demo/unsigned", "v1")
	if err != nil {
		return err
	}
	d.say("    pushed %s:v1 and signed it:", signed.Context())
	d.say("    $ cosign sign --key cosign.key --tlog-upload=false %s", signed)
	d.say("    pushed %s:v1 and did not sign it.", unsigned.Context())

	d.title("Trusting that key in namespace %q", namespace)
	if err := env.CreateNamedNamespace(ctx, namespace, nil); err != nil {
		return err
	}
	policy := harness.ImagePolicy(namespace, "demo-key", harness.PolicySpec{
		Images: []string{reg.Host + "/demo/**"},
		Keys:   []harness.KeyPair{key},
	})
	if err := env.ApplyPolicy(ctx, policy); err != nil {
		return err
	}
	y, err := yaml.Marshal(policy.Object)
	if err != nil {
		return err
	}
	d.say("    kubectl apply -f - <<EOF\n%sEOF", indentLines(string(y), "    "))
	d.say("    The namespace has no Pod Security labels, so signgate applies its default: restricted.")

	d.title("Creating three pods")
	pods := env.Client.CoreV1().Pods(namespace)
	tagRef := signed.Context().String() + ":v1"
	// The gate learns about the new namespace and policy through informers,
	// a few milliseconds after they are stored: dry-run until it has. The
	// deadline only ends a wait that would never end (a loaded machine is
	// slow, not wrong); the create below then says what is wrong.
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, err := pods.Create(ctx, harness.RestrictedPod("hello", tagRef), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	got, err := pods.Create(ctx, harness.RestrictedPod("hello", tagRef), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("the signed pod was denied: %w", err)
	}
	d.say("    ADMITTED  pod/hello       image %s", tagRef)
	d.say("              stored as       %s", got.Spec.Containers[0].Image)
	d.say("              (pinned to the digest whose signature was verified: the tag can move, the pod cannot)")

	_, err = pods.Create(ctx, harness.RestrictedPod("unsigned", unsigned.Context().String()+":v1"), metav1.CreateOptions{})
	if err == nil {
		return errors.New("the unsigned pod was admitted")
	}
	d.say("    DENIED    pod/unsigned    %s", err)

	_, err = pods.Create(ctx, harness.PrivilegedPod("privileged", tagRef), metav1.CreateOptions{})
	if err == nil {
		return errors.New("the privileged pod was admitted")
	}
	d.say("    DENIED    pod/privileged  %s", err)
	d.say("              (its image is signed; Pod Security \"restricted\" forbids privileged containers)")

	d.title("Your turn")
	d.say("    export KUBECONFIG=%s", env.APIServer.Kubeconfig)
	d.say("    kubectl -n %s get pods -o custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image", namespace)
	d.say("    kubectl -n %s get imagepolicies -o yaml", namespace)
	d.say("    kubectl -n %s run try --image=%s:v1             # denied: unsigned (and not restricted)", namespace, unsigned.Context())
	d.say("    kubectl -n %s create deployment web --image=%s  # denied at create: Pod Security", namespace, tagRef)
	d.say("    kubectl label ns %s pod-security.kubernetes.io/enforce=baseline   # then retry the deployment", namespace)
	d.say("    curl -s %s/metrics | grep ^signgate_", env.Signgate.MetricsURL)
	d.say("    component logs: %s/*.log", env.Dir)
	return nil
}

func indentLines(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix) + "\n"
}

// indent writes each line of the harness's progress log indented under the
// current step.
type indent struct {
	w      io.Writer
	prefix string
}

func (i *indent) Write(p []byte) (int, error) {
	if _, err := io.WriteString(i.w, indentLines(string(p), i.prefix)); err != nil {
		return 0, err
	}
	return len(p), nil
}
