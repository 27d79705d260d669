package verifier_test

import (
	"testing"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// BenchmarkVerifyAttestedCold: an uncached verification of a digest
// signed in the classic layout, by an authority that requires nothing
// more, an SLSA provenance with a condition read from the classic .att
// layout, or one read from a bundle attached as a referrer. Target
// (attestations issue, part 2): attestations add at most the registry
// requests of one more layout per predicate source (asserted: .att
// manifest + blob; referrers index + bundle manifest + blob).
func BenchmarkVerifyAttestedCold(b *testing.B) {
	provenance := registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1",
		Predicate: map[string]any{"runDetails": map[string]any{"builder": map[string]any{"id": "https://github.com/acme/build"}}}}
	req, err := attestation.Compile("provenance", "slsaprovenance1", `predicate.runDetails.builder.id.startsWith("https://github.com/acme/")`, "")
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		attest func(*registrytest.Registry, *registrytest.Signer, benchEnv)
		extra  int64 // registry requests the attestation may add
	}{
		{"signature only", nil, 0},
		{"provenance in .att", func(reg *registrytest.Registry, s *registrytest.Signer, e benchEnv) {
			reg.Attest(b, s, e.d, provenance)
		}, 2},
		{"provenance in a bundle", func(reg *registrytest.Registry, s *registrytest.Signer, e benchEnv) {
			reg.AttestBundle(b, s, e.d, provenance)
		}, 3},
	}
	var base int64 = -1
	for _, tc := range cases {
		s := registrytest.NewSigner(b)
		reg := registrytest.New(b)
		d := reg.PushImage(b, "team/app", "v1")
		reg.Sign(b, s, d, registrytest.Classic)
		a := authority("ci", s)
		e := benchEnv{reg: reg, d: d}
		if tc.attest != nil {
			tc.attest(reg, s, e)
			a.Attestations = []*attestation.Requirement{req}
		}
		e.set = newSet(b, 1, a)
		n := coldRequests(b, e)
		if base < 0 {
			base = n
		}
		if n > base+tc.extra {
			b.Fatalf("%s: %d registry requests, want at most %d (signature only: %d)", tc.name, n, base+tc.extra, base)
		}
		b.Run(tc.name, func(b *testing.B) {
			v := newVerifier(b, e.reg, verifier.Options{CacheSize: -1, TagTTL: -1})
			if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
				b.Fatal(err)
			}
			e.reg.ResetRequests()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			e.reportRequests(b)
		})
	}
}
