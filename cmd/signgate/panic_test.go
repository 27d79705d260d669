package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/internal/registrytest"
)

// TestServeSurvivesHostileSignatureLayers: a classic signature layer whose
// certificate or chain annotation is only whitespace once made cosign
// panic inside a shared verification, where nothing recovered it, and the
// whole gate exited (with failurePolicy Fail, a cluster-wide outage). The
// review for such an image gets a definite answer, and the gate goes on
// answering the next review.
func TestServeSurvivesHostileSignatureLayers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, 0, "")
	mallory := registrytest.NewSigner(t) // not trusted by the policy
	blank := " \n\t "
	tests := []struct {
		name        string
		signer      *registrytest.Signer
		annotations map[string]string
		check       func(*admissionv1.AdmissionResponse) error
	}{
		{
			name:        "whitespace certificate, untrusted key",
			signer:      mallory,
			annotations: map[string]string{"dev.sigstore.cosign/certificate": blank},
			check:       wantDenied("no valid signature from a trusted key"),
		},
		{
			name:        "whitespace chain, untrusted key",
			signer:      mallory,
			annotations: map[string]string{"dev.sigstore.cosign/chain": blank},
			check:       wantDenied("no valid signature from a trusted key"),
		},
		{
			name:        "whitespace certificate, trusted key",
			signer:      f.signer,
			annotations: map[string]string{"dev.sigstore.cosign/certificate": blank},
			check:       wantAllowed,
		},
	}
	var images []string
	for i, tc := range tests {
		d := f.reg.PushImage(t, "team-a/hostile"+string(rune('a'+i)), "v1")
		f.reg.SignAnnotated(t, tc.signer, d, tc.annotations)
		images = append(images, d.String())
	}
	s, _ := startServer(t, f.options(t))
	base := "https://" + s.WebhookAddr().String()
	metrics := "http://" + s.MetricsAddr().String()
	client, _ := loadClient(1)
	review := func(t *testing.T, image string, check func(*admissionv1.AdmissionResponse) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		defer cancel()
		c := reviewCase{path: "/validate?timeout=10s", body: podReview("CREATE", "team-a", podJSON([]string{image}, false)), check: check}
		if _, err := send(ctx, client, base, c); err != nil {
			t.Fatalf("review of %s: %v", image, err)
		}
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			review(t, images[i], tc.check)
			// The gate is still up and answers the next review.
			review(t, f.signed[0], wantAllowed)
			if code, body := get(t, metrics+"/healthz"); code != http.StatusOK {
				t.Fatalf("GET /healthz = %d %s", code, body)
			}
		})
	}
	if _, m := get(t, metrics+"/metrics"); !strings.Contains(m, `signgate_panics_total{op="verify"} 0`) || !strings.Contains(m, `signgate_panics_total{op="resolve"} 0`) {
		t.Errorf("a panic was recovered; the certificate annotations should not be parsed at all:\n%s", m)
	}
}
