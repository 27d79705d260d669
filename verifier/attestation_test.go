package verifier_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

const provenanceType = "https://slsa.dev/provenance/v1"

// provenance is a SLSA v1 predicate built by builder.
func provenance(builder string) map[string]any {
	return map[string]any{
		"buildDefinition": map[string]any{"buildType": "https://example.com/build"},
		"runDetails":      map[string]any{"builder": map[string]any{"id": builder}},
	}
}

const (
	goodBuilder = "https://github.com/team/app/.github/workflows/release.yml"
	builderCond = `predicate.runDetails.builder.id.startsWith("https://github.com/team/")`
	builderMsg  = `"built by " + predicate.runDetails.builder.id`
)

// attestedAuthority is authority requiring provenance under condition
// (and message).
func attestedAuthority(t *testing.T, s *registrytest.Signer, condition, message string) verifier.Authority {
	t.Helper()
	r, err := attestation.Compile("provenance", provenanceType, condition, message)
	if err != nil {
		t.Fatal(err)
	}
	return verifier.Authority{Name: "ci", Key: s.Public, Attestations: []*attestation.Requirement{r}}
}

// verifyAttested verifies d for one authority requiring provenance.
func verifyAttested(t *testing.T, v *verifier.Verifier, d name.Digest, s *registrytest.Signer, condition, message string) (verifier.Result, error) {
	t.Helper()
	set := newSet(t, 1, attestedAuthority(t, s, condition, message))
	return v.Verify(context.Background(), d, set)
}

// wantAttestationFailure checks a definite attestation failure whose
// Reason contains want.
func wantAttestationFailure(t *testing.T, err error, want string) {
	t.Helper()
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) {
		t.Fatalf("Verify: %v, want NotVerifiedError", err)
	}
	if !nv.Attestation {
		t.Errorf("Attestation = false, want true (reason %q)", nv.Reason)
	}
	if !strings.Contains(nv.Reason, want) {
		t.Errorf("Reason = %q, want it to contain %q", nv.Reason, want)
	}
	if !strings.HasPrefix(nv.Reason, "attestation provenance ("+provenanceType+") of authority ci: ") {
		t.Errorf("Reason = %q, want it to name the attestation and the authority", nv.Reason)
	}
}

func TestAttestations(t *testing.T) {
	other := registrytest.NewSigner(t)
	tests := []struct {
		name      string
		attest    func(reg *registrytest.Registry, s *registrytest.Signer, d, elsewhere name.Digest)
		condition string
		message   string
		want      string // "" = verified, else part of the attestation Reason
	}{
		{
			name: "satisfied",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
			},
			condition: builderCond, message: builderMsg,
		},
		{
			name: "presence without a condition",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance("https://github.com/evil/x")})
			},
		},
		{
			name: "subject is another image",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, elsewhere name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder), Subject: elsewhere})
			},
			condition: builderCond,
			want:      "is about another image",
		},
		{
			name: "wrong predicate type",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", Predicate: provenance(goodBuilder)})
			},
			condition: builderCond,
			want:      "no attestation of this type signed by the authority",
		},
		{
			name: "annotation claims another predicate type than the signed one",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", AnnotatedType: provenanceType, Predicate: provenance(goodBuilder)})
			},
			condition: builderCond,
			want:      "no attestation of this type signed by the authority",
		},
		{
			name: "signed by another key",
			attest: func(reg *registrytest.Registry, _ *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, other, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
			},
			condition: builderCond,
			want:      "no attestation of this type signed by the authority",
		},
		{
			name: "condition false with message",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance("https://github.com/evil/x")})
			},
			condition: builderCond, message: builderMsg,
			want: "condition false: built by https://github.com/evil/x",
		},
		{
			name: "runtime error",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: map[string]any{"buildDefinition": map[string]any{}}})
			},
			condition: builderCond,
			want:      "condition error: no such key: runDetails",
		},
		{
			name: "cost exhausted",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				items := make([]any, 3000)
				for i := range items {
					items[i] = i
				}
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: map[string]any{"items": items}})
			},
			condition: `predicate.items.all(x, predicate.items.exists(y, y == x))`,
			want:      "cost limit exceeded",
		},
		{
			name: "payload over the cap",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder), Pad: 5 << 20})
			},
			condition: builderCond,
			want:      "no attestation of this type signed by the authority (1 attestations could not be read)",
		},
		{
			name: "only the second of two satisfies",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance("https://github.com/evil/x")})
				reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
			},
			condition: builderCond, message: builderMsg,
		},
		{
			name:      "no attestations at all",
			attest:    func(*registrytest.Registry, *registrytest.Signer, name.Digest, name.Digest) {},
			condition: builderCond,
			want:      "no attestation of this type signed by the authority",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, ci, d := signedApp(t)
			elsewhere := reg.PushImage(t, "team/other", "v1")
			tc.attest(reg, ci, d, elsewhere)
			v := newVerifier(t, reg, verifier.Options{})
			res, err := verifyAttested(t, v, d, ci, tc.condition, tc.message)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(res.Verified) != 1 || res.Verified[0] != "ci" {
					t.Errorf("Verified = %v, want [ci]", res.Verified)
				}
				return
			}
			wantAttestationFailure(t, err, tc.want)
		})
	}
}

// TestAttestationsNeedTheSignature: an attestation without the signature
// is not enough; the signature failure is the reason.
func TestAttestationsNeedTheSignature(t *testing.T) {
	reg := registrytest.New(t)
	ci := registrytest.NewSigner(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	v := newVerifier(t, reg, verifier.Options{})
	_, err := verifyAttested(t, v, d, ci, builderCond, "")
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) || nv.Attestation || nv.Reason != "no signatures found" {
		t.Fatalf("Verify: %v, want no signatures found", err)
	}
}

// TestAttestationsBundleLayout: the requirement holds for a signature in
// the bundle layout too (the check is in the tally).
func TestAttestationsBundleLayout(t *testing.T) {
	reg := registrytest.New(t)
	ci := registrytest.NewSigner(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, ci, d, registrytest.Bundle)
	v := newVerifier(t, reg, verifier.Options{})
	_, err := verifyAttested(t, v, d, ci, builderCond, "")
	wantAttestationFailure(t, err, "no attestation of this type signed by the authority")

	reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	v = newVerifier(t, reg, verifier.Options{})
	if _, err := verifyAttested(t, v, d, ci, builderCond, ""); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// TestAttestationsNotReadWithoutRequirements: a set without attestations
// never reads the .att tag.
func TestAttestationsNotReadWithoutRequirements(t *testing.T) {
	reg, alice, d := signedApp(t)
	reg.Attest(t, alice, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	v := newVerifier(t, reg, verifier.Options{})
	reg.ResetRequests()
	if _, err := v.Verify(context.Background(), d, newSet(t, 1, authority("alice", alice))); err != nil {
		t.Fatal(err)
	}
	for _, l := range reg.RequestLog() {
		if strings.Contains(l, ".att") {
			t.Errorf("read %s without an attestation requirement", l)
		}
	}
}

// TestAttestationsCachedVerdictPerCondition: a set differing only in its
// condition does not get the other's cached verdict.
func TestAttestationsCachedVerdictPerCondition(t *testing.T) {
	reg, ci, d := signedApp(t)
	reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	v := newVerifier(t, reg, verifier.Options{})
	if _, err := verifyAttested(t, v, d, ci, builderCond, ""); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	res, err := verifyAttested(t, v, d, ci, builderCond, "")
	if err != nil || !res.Cached {
		t.Fatalf("second Verify: %+v, %v, want a cached verdict", res, err)
	}
	_, err = verifyAttested(t, v, d, ci, `predicate.runDetails.builder.id == "https://other"`, "")
	wantAttestationFailure(t, err, "condition false")
	// and the other way round: a cached failure is not served to the set
	// whose condition holds
	if _, err := verifyAttested(t, v, d, ci, `predicate.runDetails.builder.id != ""`, ""); err != nil {
		t.Fatalf("Verify with a third condition: %v", err)
	}
}

// TestAttestationsReadOnce: two authorities requiring attestations share
// one read of the .att manifest; the cap is Options.MaxAttestationBytes.
func TestAttestationsReadOnce(t *testing.T) {
	reg, ci, d := signedApp(t)
	ci2 := registrytest.NewSigner(t)
	reg.Sign(t, ci2, d, registrytest.Classic)
	for _, s := range []*registrytest.Signer{ci, ci2} {
		reg.Attest(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	}
	a1 := attestedAuthority(t, ci, builderCond, "")
	a2 := attestedAuthority(t, ci2, builderCond, "")
	a2.Name = "ci2"
	set := newSet(t, 2, a1, a2)
	v := newVerifier(t, reg, verifier.Options{})
	reg.ResetRequests()
	res, err := v.Verify(context.Background(), d, set)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(res.Verified) != 2 {
		t.Errorf("Verified = %v, want both", res.Verified)
	}
	n := 0
	for _, l := range reg.RequestLog() {
		if strings.Contains(l, "/manifests/") && strings.HasSuffix(l, ".att") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("read the .att manifest %d times, want once: %v", n, reg.RequestLog())
	}

	small := newVerifier(t, reg, verifier.Options{MaxAttestationBytes: 256})
	_, err = small.Verify(context.Background(), d, set)
	wantAttestationFailure(t, err, "could not be read")
}

// TestAttestationsKeyless: a keyless authority's attestations are read
// from the classic .att layout as keyless `cosign attest` writes them
// (DSSE envelope layers with certificate, chain, Rekor bundle and
// timestamp annotations) and verified on the bundle core against its
// TrustRoot, identities and extensions; the subject is checked by
// sigstore-go against the image digest.
func TestAttestationsKeyless(t *testing.T) {
	t.Parallel()
	vs, untrusted := registrytest.NewSigstore(t), registrytest.NewSigstore(t)
	const otherWorkflow = "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"
	good := registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)}
	const none = "no attestation of this type signed by the authority"
	tests := []struct {
		name      string
		attest    func(t *testing.T, reg *registrytest.Registry, d, elsewhere name.Digest)
		condition string
		want      []string // nil = verified, else parts of the attestation Reason
	}{
		{
			name: "satisfied (intoto 0.0.2 entry)",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, vs, d, ghWorkflow, ghIssuer, good)
			},
			condition: builderCond,
		},
		{
			name: "satisfied (dsse 0.0.1 entry, SET only)",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, vs, d, ghWorkflow, ghIssuer, good, registrytest.ClassicDSSEEntry(), registrytest.ClassicNoTimestamp())
			},
			condition: builderCond,
		},
		{
			name: "condition false with message",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, vs, d, ghWorkflow, ghIssuer, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance("https://github.com/evil/x")})
			},
			condition: builderCond,
			want:      []string{"condition false: built by https://github.com/evil/x"},
		},
		{
			name: "another identity's attestation does not count",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, vs, d, otherWorkflow, ghIssuer, good)
			},
			condition: builderCond,
			want:      []string{none, `certificate subject "` + otherWorkflow + `"`, "matches none of"},
		},
		{
			name: "attestation about another image",
			attest: func(t *testing.T, reg *registrytest.Registry, d, elsewhere name.Digest) {
				a := good
				a.Subject = elsewhere
				reg.AttestKeyless(t, vs, d, ghWorkflow, ghIssuer, a)
			},
			condition: builderCond,
			want:      []string{none, "an attestation certified by TrustRoot corp is about another image"},
		},
		{
			name: "untrusted CA",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, untrusted, d, ghWorkflow, ghIssuer, good)
			},
			condition: builderCond,
			want:      []string{none, "certificate not issued by a Fulcio CA of TrustRoot corp"},
		},
		{
			name: "public key as certificate",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, vs, d, ghWorkflow, ghIssuer, good, registrytest.ClassicCertificatePEM(registrytest.NewSigner(t).PublicPEM))
			},
			condition: builderCond,
			want:      []string{none, "the classic attestation's certificate annotation holds a public key, not a certificate"},
		},
		{
			name: "no log entry",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, vs, d, ghWorkflow, ghIssuer, good, registrytest.ClassicNoRekorBundle())
			},
			condition: builderCond,
			want:      []string{none, "no transparency log entry verified against TrustRoot corp"},
		},
		{
			name: "key-signed attestation",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.Attest(t, registrytest.NewSigner(t), d, good)
			},
			condition: builderCond,
			want:      []string{none},
		},
		{
			name: "the right identity's among others",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeyless(t, untrusted, d, ghWorkflow, ghIssuer, good)
				reg.AttestKeyless(t, vs, d, otherWorkflow, ghIssuer, good)
				reg.AttestKeyless(t, vs, d, ghWorkflow, ghIssuer, good)
			},
			condition: builderCond,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			elsewhere := reg.PushImage(t, "team/other", "v1")
			reg.SignKeylessClassic(t, vs, d, ghWorkflow, ghIssuer)
			tc.attest(t, reg, d, elsewhere)
			r, err := attestation.Compile("provenance", provenanceType, tc.condition, builderMsg)
			if err != nil {
				t.Fatal(err)
			}
			a := keylessAuthority(t, "ci", vs, identity(t, ghIssuer, ghWorkflow, ""))
			a.Attestations = []*attestation.Requirement{r}
			v := newVerifier(t, reg, verifier.Options{})
			res, err := v.Verify(t.Context(), d, newSet(t, 1, a))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(res.Verified) != 1 || res.Verified[0] != "ci" {
					t.Errorf("Verified = %v, want [ci]", res.Verified)
				}
				return
			}
			for _, w := range tc.want {
				wantAttestationFailure(t, err, w)
			}
		})
	}
}
