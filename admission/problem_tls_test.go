package admission

import (
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// TestRegistryProblemUntrustedCertificate: a registry whose TLS
// certificate no configured CA issued is named with the setting to fix.
func TestRegistryProblemUntrustedCertificate(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t, registrytest.WithTLS(nil))
	reg.PushImage(t, "team/app", "v1")
	v, err := verifier.New(verifier.Options{AllowedHosts: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Resolve(t.Context(), ref)
	want := "registry " + reg.Host + " failed TLS verification: the certificate of " + reg.Host +
		" is not signed by a CA signgate trusts for it; set registry.certificateAuthorities for " + reg.Host + " to the CA bundle that issued it, retry"
	if got := registryProblem(reg.Host, err, ConfigRemedies); got != want {
		t.Errorf("registryProblem = %q\nwant %q", got, want)
	}
}
