package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func mutatingConfig(name string) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func validatingConfig(name string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// remaining lists the webhook configurations left in the fake cluster.
func remaining(t *testing.T, kube *kubefake.Clientset) []string {
	t.Helper()
	var out []string
	muts, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range muts.Items {
		out = append(out, "mutating/"+m.Name)
	}
	vals, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vals.Items {
		out = append(out, "validating/"+v.Name)
	}
	return out
}

func TestUninstallWebhooks(t *testing.T) {
	t.Parallel()
	forbidden := func(verb, resource string) k8stesting.ReactionFunc {
		return func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: resource},
				"signgate", errorString("User \"system:serviceaccount:signgate-system:x\" cannot "+verb+" resource"))
		}
	}
	tests := []struct {
		name       string
		objects    []runtime.Object
		react      func(*kubefake.Clientset)
		opts       uninstallOptions
		wantCode   int
		wantStdout string
		wantStderr []string // substrings; none: stderr empty
		wantLeft   []string
	}{
		{
			name:    "deleted",
			objects: []runtime.Object{mutatingConfig("signgate"), validatingConfig("signgate"), validatingConfig("other")},
			opts:    uninstallOptions{Mutating: []string{"signgate"}, Validating: []string{"signgate"}},
			wantStdout: "MutatingWebhookConfiguration signgate: deleted\n" +
				"ValidatingWebhookConfiguration signgate: deleted\n",
			wantLeft: []string{"validating/other"},
		},
		{
			name:    "already absent",
			objects: []runtime.Object{validatingConfig("other")},
			opts:    uninstallOptions{Mutating: []string{"signgate"}, Validating: []string{"signgate"}},
			wantStdout: "MutatingWebhookConfiguration signgate: not found (already removed)\n" +
				"ValidatingWebhookConfiguration signgate: not found (already removed)\n",
			wantLeft: []string{"validating/other"},
		},
		{
			name:    "only validating, several",
			objects: []runtime.Object{mutatingConfig("signgate"), validatingConfig("a"), validatingConfig("b")},
			opts:    uninstallOptions{Validating: []string{"a", "b"}},
			wantStdout: "ValidatingWebhookConfiguration a: deleted\n" +
				"ValidatingWebhookConfiguration b: deleted\n",
			wantLeft: []string{"mutating/signgate"},
		},
		{
			name:    "delete forbidden",
			objects: []runtime.Object{mutatingConfig("signgate"), validatingConfig("signgate")},
			react: func(c *kubefake.Clientset) {
				c.PrependReactor("delete", "mutatingwebhookconfigurations", forbidden("delete", "mutatingwebhookconfigurations"))
			},
			opts:     uninstallOptions{Mutating: []string{"signgate"}, Validating: []string{"signgate"}},
			wantCode: exitDenied,
			// The other configuration is still removed.
			wantStdout: "ValidatingWebhookConfiguration signgate: deleted\n",
			wantStderr: []string{
				"signgate uninstall-webhooks: MutatingWebhookConfiguration signgate: delete: forbidden: the user needs get and delete on mutatingwebhookconfigurations (apiGroup admissionregistration.k8s.io, resourceNames signgate)",
			},
			wantLeft: []string{"mutating/signgate"},
		},
		{
			name:    "get forbidden while waiting",
			objects: []runtime.Object{validatingConfig("signgate")},
			react: func(c *kubefake.Clientset) {
				c.PrependReactor("get", "validatingwebhookconfigurations", forbidden("get", "validatingwebhookconfigurations"))
			},
			opts:       uninstallOptions{Validating: []string{"signgate"}},
			wantCode:   exitDenied,
			wantStderr: []string{"ValidatingWebhookConfiguration signgate: wait until deleted: forbidden: the user needs get and delete on validatingwebhookconfigurations"},
		},
		{
			name:    "other API error",
			objects: []runtime.Object{validatingConfig("signgate")},
			react: func(c *kubefake.Clientset) {
				c.PrependReactor("delete", "validatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewServiceUnavailable("etcd is down")
				})
			},
			opts:       uninstallOptions{Validating: []string{"signgate"}},
			wantCode:   exitDenied,
			wantStderr: []string{"ValidatingWebhookConfiguration signgate: delete: etcd is down"},
			wantLeft:   []string{"validating/signgate"},
		},
		{
			// A finalizer (or a slow API server) keeps it for two more
			// GETs: it is reported once GET says NotFound.
			name:    "waits until gone",
			objects: []runtime.Object{mutatingConfig("signgate")},
			react: func(c *kubefake.Clientset) {
				gets := 0
				c.PrependReactor("get", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
					if gets++; gets <= 2 {
						return true, mutatingConfig("signgate"), nil
					}
					return false, nil, nil
				})
			},
			opts:       uninstallOptions{Mutating: []string{"signgate"}},
			wantStdout: "MutatingWebhookConfiguration signgate: deleted\n",
		},
		{
			name:    "never gone",
			objects: []runtime.Object{mutatingConfig("signgate")},
			react: func(c *kubefake.Clientset) {
				c.PrependReactor("get", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, mutatingConfig("signgate"), nil
				})
			},
			opts:       uninstallOptions{Mutating: []string{"signgate"}, Timeout: 50 * time.Millisecond},
			wantCode:   exitDenied,
			wantStderr: []string{"MutatingWebhookConfiguration signgate: wait until deleted: still present after --timeout 50ms"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := kubefake.NewClientset(tt.objects...)
			if tt.react != nil {
				tt.react(kube)
			}
			opts := tt.opts
			if opts.Timeout == 0 {
				opts.Timeout = 10 * time.Second
			}
			var stdout, stderr bytes.Buffer
			code := runUninstall(t.Context(), kube, opts, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, &stderr)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, tt.wantStdout)
			}
			if len(tt.wantStderr) == 0 && stderr.Len() > 0 {
				t.Errorf("stderr: %s", &stderr)
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q does not contain %q", &stderr, s)
				}
			}
			if got := strings.Join(remaining(t, kube), ","); got != strings.Join(tt.wantLeft, ",") {
				t.Errorf("left in the cluster: %v, want %v", got, tt.wantLeft)
			}
		})
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// Usage errors exit 2 before any client is made: no names, a bad name.
func TestUninstallWebhooksUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		wantStderr string
	}{
		{[]string{"uninstall-webhooks"}, "signgate uninstall-webhooks: nothing to delete: name the configurations with --mutating NAME and --validating NAME\nRun 'signgate uninstall-webhooks --help' for usage.\n"},
		{[]string{"uninstall-webhooks", "--kubeconfig", "k"}, "signgate uninstall-webhooks: nothing to delete: name the configurations with --mutating NAME and --validating NAME\nRun 'signgate uninstall-webhooks --help' for usage.\n"},
		{[]string{"uninstall-webhooks", "signgate"}, "signgate uninstall-webhooks: unexpected argument \"signgate\" (configurations are named with --mutating and --validating)\nRun 'signgate uninstall-webhooks --help' for usage.\n"},
		{[]string{"uninstall-webhooks", "--mutating", "Not_A_Name"}, "signgate uninstall-webhooks: --mutating \"Not_A_Name\": "},
		{[]string{"uninstall-webhooks", "--validating", "signgate", "--timeout", "0s"}, "signgate uninstall-webhooks: --timeout must be positive\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != exitUsage {
				t.Errorf("exit %d, want 2; stderr: %s", code, &stderr)
			}
			if !strings.HasPrefix(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr:\n%q\nwant prefix:\n%q", &stderr, tt.wantStderr)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %s", &stdout)
			}
		})
	}
}

// An unreadable kubeconfig is a configuration error: exit 2.
func TestUninstallWebhooksBadKubeconfig(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"uninstall-webhooks", "--validating", "signgate", "--kubeconfig", t.TempDir() + "/missing"}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "signgate uninstall-webhooks: load kubeconfig") {
		t.Errorf("exit %d, stderr %q; want 2 and load kubeconfig error", code, &stderr)
	}
}
