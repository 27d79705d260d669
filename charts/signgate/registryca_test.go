package chart_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// registryCAs.existingConfigMap: the ConfigMap is mounted read-only at
// /etc/signgate/registry-ca, where config.registry.certificateAuthorities
// names its files; nothing is mounted without it.
func TestRegistryCAs(t *testing.T) {
	t.Parallel()
	const dir = "/etc/signgate/registry-ca"
	d := one[appsv1.Deployment](t, render(t), "Deployment")
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "registry-ca" {
			t.Errorf("registry-ca volume without registryCAs.existingConfigMap: %+v", v)
		}
	}

	objs := render(t, "--set", "registryCAs.existingConfigMap=registry-ca",
		"--set", `config.registry.certificateAuthorities.registry\.corp\.example=`+dir+"/corp.pem",
		"--set", `config.registry.certificateAuthorities.harbor\.corp\.example:8443=`+dir+"/harbor.pem")
	d = one[appsv1.Deployment](t, objs, "Deployment")
	spec := d.Spec.Template.Spec
	var mounted bool
	for _, m := range spec.Containers[0].VolumeMounts {
		if m.Name == "registry-ca" {
			mounted = m.MountPath == dir && m.ReadOnly && m.SubPath == ""
		}
	}
	if !mounted {
		t.Errorf("volume registry-ca not mounted read-only at %s: %+v", dir, spec.Containers[0].VolumeMounts)
	}
	var found bool
	for _, v := range spec.Volumes {
		if v.Name != "registry-ca" {
			continue
		}
		found = true
		if c := v.ConfigMap; c == nil || c.Name != "registry-ca" || len(c.Items) != 0 {
			t.Errorf("registry-ca volume = %+v, want every key of ConfigMap registry-ca", v.VolumeSource)
		}
	}
	if !found {
		t.Error("no registry-ca volume")
	}

	cm := one[corev1.ConfigMap](t, objs, "ConfigMap")
	var cfg struct {
		Registry struct {
			CertificateAuthorities map[string]string `json:"certificateAuthorities"`
		} `json:"registry"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"registry.corp.example": dir + "/corp.pem", "harbor.corp.example:8443": dir + "/harbor.pem"}
	if got := cfg.Registry.CertificateAuthorities; len(got) != len(want) || got["registry.corp.example"] != want["registry.corp.example"] || got["harbor.corp.example:8443"] != want["harbor.corp.example:8443"] {
		t.Errorf("config.yaml registry.certificateAuthorities = %v, want %v", got, want)
	}
}
