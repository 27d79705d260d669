package chart_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// webhook.clientCA: off by default (no flag, no volume); with a Secret or a
// ConfigMap, the chosen key is mounted read-only as /client-ca/ca.crt and
// passed as --client-ca-file, whole-volume (no subPath) so that kubelet's
// updates reach the gate, which re-reads the file.
func TestWebhookClientCA(t *testing.T) {
	t.Parallel()
	const caFile = "/client-ca/ca.crt"
	clientCAArgs := func(c corev1.Container) []string {
		i := slices.Index(c.Args, "--client-ca-file")
		if i < 0 || i+1 >= len(c.Args) {
			return nil
		}
		return c.Args[i : i+2]
	}
	volume := func(spec corev1.PodSpec) *corev1.Volume {
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == "client-ca" {
				return &spec.Volumes[i]
			}
		}
		return nil
	}

	t.Run("default off", func(t *testing.T) {
		t.Parallel()
		spec := one[appsv1.Deployment](t, render(t), "Deployment").Spec.Template.Spec
		c := spec.Containers[0]
		if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--client-ca-file") }) {
			t.Errorf("args %v carry --client-ca-file by default", c.Args)
		}
		if v := volume(spec); v != nil {
			t.Errorf("client-ca volume rendered by default: %+v", v)
		}
	})

	tests := []struct {
		name string
		args []string
		want func(v corev1.VolumeSource) bool
	}{
		{
			name: "secret",
			args: []string{"--set", "webhook.clientCA.existingSecret=apiserver-client-ca"},
			want: func(v corev1.VolumeSource) bool {
				s := v.Secret
				return s != nil && v.ConfigMap == nil && s.SecretName == "apiserver-client-ca" &&
					cmp.Equal(s.Items, []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}})
			},
		},
		{
			name: "configmap with another key",
			args: []string{"--set", "webhook.clientCA.existingConfigMap=apiserver-client-ca", "--set", "webhook.clientCA.key=client-ca.pem"},
			want: func(v corev1.VolumeSource) bool {
				cm := v.ConfigMap
				return cm != nil && v.Secret == nil && cm.Name == "apiserver-client-ca" &&
					cmp.Equal(cm.Items, []corev1.KeyToPath{{Key: "client-ca.pem", Path: "ca.crt"}})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := one[appsv1.Deployment](t, render(t, tt.args...), "Deployment")
			spec := d.Spec.Template.Spec
			c := spec.Containers[0]
			if diff := cmp.Diff([]string{"--client-ca-file", caFile}, clientCAArgs(c)); diff != "" {
				t.Errorf("--client-ca-file argument (-want +got):\n%s\nargs: %v", diff, c.Args)
			}
			var mounted bool
			for _, m := range c.VolumeMounts {
				if m.Name == "client-ca" {
					mounted = m.MountPath == "/client-ca" && m.ReadOnly && m.SubPath == ""
				}
			}
			if !mounted {
				t.Errorf("volume client-ca not mounted read-only (without subPath) at /client-ca: %+v", c.VolumeMounts)
			}
			v := volume(spec)
			if v == nil {
				t.Fatal("no client-ca volume")
			}
			if !tt.want(v.VolumeSource) {
				t.Errorf("client-ca volume = %+v", v.VolumeSource)
			}
			checkRestricted(t, d.Spec.Template)
		})
	}
}

func TestWebhookClientCASchema(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"both a Secret and a ConfigMap", []string{"--set", "webhook.clientCA.existingSecret=a", "--set", "webhook.clientCA.existingConfigMap=b"}},
		{"key with a slash", []string{"--set", "webhook.clientCA.existingSecret=a", "--set", "webhook.clientCA.key=a/b"}},
		{"Secret name with a slash", []string{"--set", "webhook.clientCA.existingSecret=a/b"}},
		{"misspelt field", []string{"--set", "webhook.clientCA.secret=a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := helm(helmBinary(t), tt.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want a schema error", tt.args)
			}
			if !strings.Contains(string(out), "schema") {
				t.Errorf("helm template %v failed without naming the schema:\n%s", tt.args, out)
			}
		})
	}
}
