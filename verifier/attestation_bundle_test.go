package verifier_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// TestAttestationsBundle: attestations in the bundle layout (what `cosign
// attest --new-bundle-format` attaches as referrers) satisfy a key
// authority's requirements as classic ones do; the predicate type is the
// signed statement's, never the referrer's annotation.
func TestAttestationsBundle(t *testing.T) {
	other := registrytest.NewSigner(t)
	good := registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)}
	const none = "no attestation of this type signed by the authority"
	tests := []struct {
		name   string
		layout registrytest.Layout // of the image signature
		attest func(reg *registrytest.Registry, s *registrytest.Signer, d, elsewhere name.Digest)
		want   string // "" = verified, else part of the attestation Reason
	}{
		{
			name: "satisfied (classic signature)",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.AttestBundle(t, s, d, good)
			},
		},
		{
			name:   "satisfied (bundle signature)",
			layout: registrytest.Bundle,
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.AttestBundle(t, s, d, good)
			},
		},
		{
			name: "annotation claims another predicate type than the signed one",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.AttestBundle(t, s, d, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", AnnotatedType: provenanceType, Predicate: provenance(goodBuilder)})
			},
			want: none,
		},
		{
			name:   "annotation claims a signature",
			layout: registrytest.Bundle,
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				a := good
				a.AnnotatedType = "https://sigstore.dev/cosign/sign/v1"
				reg.AttestBundle(t, s, d, a)
			},
		},
		{
			name: "subject is another image",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, elsewhere name.Digest) {
				a := good
				a.Subject = elsewhere
				reg.AttestBundle(t, s, d, a)
			},
			want: "is about another image",
		},
		{
			name: "signed by another key",
			attest: func(reg *registrytest.Registry, _ *registrytest.Signer, d, _ name.Digest) {
				reg.AttestBundle(t, other, d, good)
			},
			want: none,
		},
		{
			name: "condition false names the attestation",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, _ name.Digest) {
				reg.AttestBundle(t, s, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance("https://github.com/evil/x")})
			},
			want: "condition false: built by https://github.com/evil/x",
		},
		{
			name: "the authority's among others",
			attest: func(reg *registrytest.Registry, s *registrytest.Signer, d, elsewhere name.Digest) {
				reg.AttestBundle(t, other, d, good)
				a := good
				a.Subject = elsewhere
				reg.AttestBundle(t, s, d, a)
				reg.AttestBundle(t, s, d, good)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := registrytest.New(t)
			ci := registrytest.NewSigner(t)
			d := reg.PushImage(t, "team/app", "v1")
			elsewhere := reg.PushImage(t, "team/other", "v1")
			reg.Sign(t, ci, d, tc.layout)
			tc.attest(reg, ci, d, elsewhere)
			v := newVerifier(t, reg, verifier.Options{})
			res, err := verifyAttested(t, v, d, ci, builderCond, builderMsg)
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

// TestAttestationsBundleKeyless: a keyless authority's attestation
// bundles are verified against its TrustRoot and identities.
func TestAttestationsBundleKeyless(t *testing.T) {
	vs := registrytest.NewSigstore(t)
	const otherWorkflow = "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"
	good := registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)}
	tests := []struct {
		name   string
		attest func(t *testing.T, reg *registrytest.Registry, d, elsewhere name.Digest)
		want   []string
	}{
		{
			name: "satisfied",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeylessBundle(t, vs, d, ghWorkflow, ghIssuer, good)
			},
		},
		{
			name: "another identity's attestation does not count",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeylessBundle(t, vs, d, otherWorkflow, ghIssuer, good)
			},
			want: []string{"no attestation of this type signed by the authority", `certificate subject "` + otherWorkflow + `"`},
		},
		{
			name: "about another image",
			attest: func(t *testing.T, reg *registrytest.Registry, d, elsewhere name.Digest) {
				a := good
				a.Subject = elsewhere
				reg.AttestKeylessBundle(t, vs, d, ghWorkflow, ghIssuer, a)
			},
			want: []string{"an attestation certified by TrustRoot corp is about another image"},
		},
		{
			name: "annotation claims another predicate type than the signed one",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeylessBundle(t, vs, d, ghWorkflow, ghIssuer, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", AnnotatedType: provenanceType})
			},
			want: []string{"no attestation of this type signed by the authority"},
		},
		{
			name: "condition false",
			attest: func(t *testing.T, reg *registrytest.Registry, d, _ name.Digest) {
				reg.AttestKeylessBundle(t, vs, d, ghWorkflow, ghIssuer, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance("https://github.com/evil/x")})
			},
			want: []string{"condition false: built by https://github.com/evil/x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			elsewhere := reg.PushImage(t, "team/other", "v1")
			reg.SignKeyless(t, vs, d, ghWorkflow, ghIssuer)
			tc.attest(t, reg, d, elsewhere)
			r, err := attestation.Compile("provenance", provenanceType, builderCond, builderMsg)
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

const sbomType = "https://spdx.dev/Document"

// twoRequirements is an authority requiring provenance and an SBOM.
func twoRequirements(t *testing.T, s *registrytest.Signer) verifier.Authority {
	t.Helper()
	a := attestedAuthority(t, s, builderCond, builderMsg)
	sbom, err := attestation.Compile("sbom", sbomType, `predicate.name == "app"`, "")
	if err != nil {
		t.Fatal(err)
	}
	a.Attestations = append(a.Attestations, sbom)
	return a
}

// countRequests counts the logged requests containing each of parts.
func countRequests(reg *registrytest.Registry, parts ...string) int {
	n := 0
	for _, l := range reg.RequestLog() {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}

// TestAttestationsBothLayouts: one requirement satisfied by a classic
// attestation and another by a bundle; the referrers index is read once
// per Verify whichever layout the signature is in and whichever reads it
// first.
func TestAttestationsBothLayouts(t *testing.T) {
	for _, layout := range []registrytest.Layout{registrytest.Classic, registrytest.Bundle} {
		t.Run(layout.String(), func(t *testing.T) {
			reg := registrytest.New(t)
			ci := registrytest.NewSigner(t)
			d := reg.PushImage(t, "team/app", "v1")
			reg.Sign(t, ci, d, layout)
			reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
			reg.AttestBundle(t, ci, d, registrytest.Attestation{PredicateType: sbomType, Predicate: map[string]any{"name": "app"}})
			set := newSet(t, 1, twoRequirements(t, ci))
			v := newVerifier(t, reg, verifier.Options{})
			reg.ResetRequests()
			if _, err := v.Verify(context.Background(), d, set); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			log := reg.RequestLog()
			if n := countRequests(reg, "/referrers/"); n > 1 {
				t.Errorf("read the referrers index %d times, want at most once: %v", n, log)
			}
			if n := countRequests(reg, "/manifests/", ".att"); n != 1 {
				t.Errorf("read the .att manifest %d times, want once: %v", n, log)
			}
			seen := make(map[string]bool)
			for _, l := range log {
				if seen[l] && l != "GET /v2/" {
					t.Errorf("%s requested twice: %v", l, log)
				}
				seen[l] = true
			}
			t.Logf("%d requests: %v", len(log), log)

			// not satisfied by the bundle: the classic one is still read,
			// and the failure names the SBOM requirement
			reg2 := registrytest.New(t)
			d2 := reg2.PushImage(t, "team/app", "v1")
			reg2.Sign(t, ci, d2, layout)
			reg2.Attest(t, ci, d2, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
			reg2.AttestBundle(t, ci, d2, registrytest.Attestation{PredicateType: sbomType, Predicate: map[string]any{"name": "other"}})
			v2 := newVerifier(t, reg2, verifier.Options{})
			reg2.ResetRequests()
			_, err := v2.Verify(context.Background(), d2, set)
			if err == nil || !strings.Contains(err.Error(), "attestation sbom ("+sbomType+") of authority ci: condition false") {
				t.Errorf("Verify: %v, want the sbom condition false", err)
			}
			if n := countRequests(reg2, "/referrers/"); n != 1 {
				t.Errorf("read the referrers index %d times, want once: %v", n, reg2.RequestLog())
			}
		})
	}
}

// TestAttestationsBundleOnlyWhenNeeded: when the classic .att satisfies
// every requirement, a classic signature's verification reads no
// referrers; and a bundle too large for MaxAttestationBytes is not read.
func TestAttestationsBundleOnlyWhenNeeded(t *testing.T) {
	reg, ci, d := signedApp(t)
	reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	reg.AttestBundle(t, ci, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	v := newVerifier(t, reg, verifier.Options{})
	reg.ResetRequests()
	if _, err := verifyAttested(t, v, d, ci, builderCond, ""); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if n := countRequests(reg, "/referrers/"); n != 0 {
		t.Errorf("read the referrers index %d times, want none: %v", n, reg.RequestLog())
	}
	t.Logf("%d requests: %v", reg.Requests(), reg.RequestLog())

	reg2 := registrytest.New(t)
	d2 := reg2.PushImage(t, "team/app", "v1")
	reg2.Sign(t, ci, d2, registrytest.Classic)
	reg2.AttestBundle(t, ci, d2, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	small := newVerifier(t, reg2, verifier.Options{MaxAttestationBytes: 256})
	_, err := verifyAttested(t, small, d2, ci, builderCond, "")
	wantAttestationFailure(t, err, "could not be read")
	if _, err := verifyAttested(t, newVerifier(t, reg2, verifier.Options{}), d2, ci, builderCond, ""); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// TestAttestationsBundleWhenClassicUnreadable: a requirement satisfied by
// a bundle verifies even when the .att tag could not be read.
func TestAttestationsBundleWhenClassicUnreadable(t *testing.T) {
	reg, ci, d := signedApp(t)
	reg.AttestBundle(t, ci, d, registrytest.Attestation{PredicateType: provenanceType, Predicate: provenance(goodBuilder)})
	reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.HasSuffix(req.URL.Path, ".att") {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		return false
	})
	v := newVerifier(t, reg, verifier.Options{})
	if _, err := verifyAttested(t, v, d, ci, builderCond, ""); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// TestAttestationLayoutHint: once a repository's attestations were found
// as bundles, the next verification reads the bundles first and makes no
// request for the classic .att tag.
func TestAttestationLayoutHint(t *testing.T) {
	t.Parallel()
	s := registrytest.NewSigner(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, s, d, registrytest.Classic)
	reg.AttestBundle(t, s, d, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", Predicate: map[string]any{"spdxVersion": "SPDX-2.3"}})
	sbom, err := attestation.Compile("sbom", "spdxjson", "", "")
	if err != nil {
		t.Fatal(err)
	}
	a := authority("ci", s)
	a.Attestations = []*attestation.Requirement{sbom}
	set := newSet(t, 1, a)
	v := newVerifier(t, reg, verifier.Options{CacheSize: -1})
	attTag := ".att"
	for i, wantAtt := range []bool{true, false} {
		reg.ResetRequests()
		if _, err := v.Verify(t.Context(), d, set); err != nil {
			t.Fatalf("verification %d: %v", i, err)
		}
		readAtt := false
		for _, r := range reg.RequestLog() {
			readAtt = readAtt || strings.Contains(r, attTag)
		}
		if readAtt != wantAtt {
			t.Errorf("verification %d read the .att tag: %v, want %v (%v)", i, readAtt, wantAtt, reg.RequestLog())
		}
	}
}
