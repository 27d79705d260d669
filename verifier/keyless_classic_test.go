package verifier_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	sgauthority "github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// TestKeylessClassic: keyless signatures in the classic .sig layout
// (`cosign sign` without --new-bundle-format) verify on the bundle core,
// with the signing time only from the log entry's SET or the TSA
// timestamp.
func TestKeylessClassic(t *testing.T) {
	t.Parallel()
	vs, other := registrytest.NewSigstore(t), registrytest.NewSigstore(t)
	release := identity(t, ghIssuer, ghWorkflow, "")
	anchored := identity(t, ghIssuer, "", `^https://github\.com/acme/app/.*$`)
	const notTrusted = "no valid signature from a trusted identity: "
	for _, tc := range []struct {
		name            string
		signer          *registrytest.Sigstore
		subject, issuer string
		id              sgauthority.Identity
		opts            func(t *testing.T, reg *registrytest.Registry) []registrytest.ClassicOption
		want            []string // Reason parts; nil: verified
	}{
		{name: "right identity", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release},
		{name: "regexp", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: anchored},
		{name: "SET only", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicNoTimestamp())},
		{name: "other workflow", signer: vs, subject: "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main", issuer: ghIssuer, id: release,
			want: []string{notTrusted, `certificate subject "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"`, "matches none of"}},
		{name: "untrusted CA", signer: other, subject: ghWorkflow, issuer: ghIssuer, id: release,
			want: []string{notTrusted + "certificate not issued by a Fulcio CA of TrustRoot corp"}},
		{name: "claims another image", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: func(t *testing.T, reg *registrytest.Registry) []registrytest.ClassicOption {
				return []registrytest.ClassicOption{registrytest.ClassicClaim(reg.PushImage(t, "team/other", "v1"))}
			},
			want: []string{notTrusted + "the signed payload is not a cosign signature of this image"}},
		{name: "leaf expired at log time", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicLoggedAt(time.Now().Add(time.Hour)), registrytest.ClassicNoTimestamp()),
			want: []string{notTrusted + "no verified signing time", "within the certificate's validity"}},
		{name: "leaf expired at log time, valid TSA time", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicLoggedAt(time.Now().Add(time.Hour))),
			want: []string{notTrusted + "no verified signing time", "within the certificate's validity"}},
		// Also before the virtual log's validity: its SET does not count.
		{name: "leaf not yet valid at log time", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicLoggedAt(time.Now().Add(-time.Hour)), registrytest.ClassicNoTimestamp()),
			want: []string{notTrusted + "no transparency log entry verified against TrustRoot corp"}},
		{name: "log entry of another signature", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicForeignRekorBundle()),
			want: []string{notTrusted + "no transparency log entry verified against TrustRoot corp"}},
		{name: "TSA timestamp only", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicNoRekorBundle()),
			want: []string{notTrusted + "no transparency log entry verified against TrustRoot corp"}},
		{name: "no signing time", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicNoRekorBundle(), registrytest.ClassicNoTimestamp()),
			want: []string{notTrusted + "the classic signature carries no signing time"}},
		{name: "public key as certificate", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicCertificatePEM(registrytest.NewSigner(t).PublicPEM)),
			want: []string{notTrusted + "the classic signature's certificate annotation holds a public key, not a certificate"}},
		{name: "certificate annotation not PEM", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release,
			opts: opts(registrytest.ClassicCertificatePEM([]byte(" \n"))),
			want: []string{notTrusted + "malformed classic keyless signature: the certificate annotation is not PEM"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			var o []registrytest.ClassicOption
			if tc.opts != nil {
				o = tc.opts(t, reg)
			}
			reg.SignKeylessClassic(t, tc.signer, d, tc.subject, tc.issuer, o...)
			v := newVerifier(t, reg, verifier.Options{})
			res, err := v.Verify(t.Context(), d, newSet(t, 1, keylessAuthority(t, "release", vs, tc.id)))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(res.Verified) != 1 || res.Verified[0] != "release" {
					t.Errorf("Verified = %v, want [release]", res.Verified)
				}
				return
			}
			var nv *verifier.NotVerifiedError
			if !errors.As(err, &nv) {
				t.Fatalf("Verify = %v, %v; want not verified", res, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(nv.Reason, w) {
					t.Errorf("Reason %q does not contain %q (details %q)", nv.Reason, w, nv.Details)
				}
			}
		})
	}
}

func opts(o ...registrytest.ClassicOption) func(*testing.T, *registrytest.Registry) []registrytest.ClassicOption {
	return func(*testing.T, *registrytest.Registry) []registrytest.ClassicOption { return o }
}

// TestClassicPublicKeyAsCertificate: a certificate annotation holding a
// bare public key (cosign's GHSA-fx35-mq7g-6g98) gives a key authority
// nothing: the key path ignores the annotation and checks the signature
// against the authority's own key only.
func TestClassicPublicKeyAsCertificate(t *testing.T) {
	t.Parallel()
	alice, mallory := registrytest.NewSigner(t), registrytest.NewSigner(t)
	vs := registrytest.NewSigstore(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	// Mallory signs, naming Alice's key as the "certificate".
	reg.SignAnnotated(t, mallory, d, map[string]string{registrytest.CertificateAnnotation: string(alice.PublicPEM)})
	v := newVerifier(t, reg, verifier.Options{})
	if res, err := v.Verify(t.Context(), d, newSet(t, 1, authority("alice", alice))); err == nil {
		t.Fatalf("verified for alice by mallory's signature: %+v", res)
	}
	_, err := v.Verify(t.Context(), d, newSet(t, 1, keylessAuthority(t, "release", vs, identity(t, ghIssuer, ghWorkflow, ""))))
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) || !strings.Contains(nv.Reason, "holds a public key, not a certificate") {
		t.Fatalf("keyless Verify = %v; want not verified, public key", err)
	}
	// The signer's own key still verifies its signature.
	if _, err := v.Verify(t.Context(), d, newSet(t, 1, authority("mallory", mallory))); err != nil {
		t.Errorf("Verify for mallory's key: %v", err)
	}
}

// TestKeylessClassicAndBundleOneSigner: a classic and a bundle signature
// by one identity count as one signer.
func TestKeylessClassicAndBundleOneSigner(t *testing.T) {
	t.Parallel()
	vs := registrytest.NewSigstore(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.SignKeylessClassic(t, vs, d, ghWorkflow, ghIssuer)
	reg.SignKeyless(t, vs, d, ghWorkflow, ghIssuer)
	set := newSet(t, 2,
		keylessAuthority(t, "exact", vs, identity(t, ghIssuer, ghWorkflow, "")),
		keylessAuthority(t, "org", vs, identity(t, ghIssuer, "", `^https://github\.com/acme/.*$`)))
	_, err := newVerifier(t, reg, verifier.Options{}).Verify(t.Context(), d, set)
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) || !strings.Contains(nv.Reason, "only 1 of the 2 required") {
		t.Fatalf("Verify = %v; want only 1 of 2", err)
	}
	reg.SignKeylessClassic(t, vs, d, "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main", ghIssuer)
	res, err := newVerifier(t, reg, verifier.Options{}).Verify(t.Context(), d, set)
	if err != nil || strings.Join(res.Verified, ",") != "exact,org" {
		t.Errorf("Verify with two signers = %+v, %v", res, err)
	}
}

// TestKeylessClassicIntermediateValidity: every certificate of the chain,
// the intermediate too, must be valid at the signing time.
func TestKeylessClassicIntermediateValidity(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tc := range []struct {
		name     string
		notAfter time.Time // of the intermediate; the log time is now+5m
		opts     []registrytest.ClassicOption
		want     string // Reason part; "": verified
	}{
		{name: "valid", notAfter: now.Add(2 * time.Hour)},
		{name: "expired at log time", notAfter: now.Add(time.Minute), opts: []registrytest.ClassicOption{registrytest.ClassicNoTimestamp()},
			want: "no valid signature from a trusted identity: no verified signing time"},
		{name: "expired at log time, valid TSA time", notAfter: now.Add(time.Minute),
			want: "no valid signature from a trusted identity: no verified signing time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vs := registrytest.NewSigstoreIntermediate(t, now.Add(-time.Hour), tc.notAfter)
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			reg.SignKeylessClassic(t, vs, d, ghWorkflow, ghIssuer, tc.opts...)
			_, err := newVerifier(t, reg, verifier.Options{}).Verify(t.Context(), d, newSet(t, 1, keylessAuthority(t, "release", vs, identity(t, ghIssuer, ghWorkflow, ""))))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			var nv *verifier.NotVerifiedError
			if !errors.As(err, &nv) || !strings.Contains(nv.Reason, tc.want) {
				t.Fatalf("Verify = %v; want not verified: %s", err, tc.want)
			}
		})
	}
}
