package verifier_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"

	sgauthority "github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
	"github.com/signgate/signgate/verifier/bundle"
)

const (
	ghIssuer   = "https://token.actions.githubusercontent.com"
	ghWorkflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
)

// keylessAuthority trusts identities (issuer, subject or subjectRegExp
// pairs) certified by vs.
func keylessAuthority(t *testing.T, name string, vs *registrytest.Sigstore, ids ...sgauthority.Identity) verifier.Authority {
	t.Helper()
	k, err := sgauthority.NewKeyless(sgauthority.TrustRoot{Name: "corp", Material: vs.Material(), Digest: fmt.Sprintf("test-root-%p", vs)}, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	return verifier.Authority{Name: name, Keyless: k}
}

func identity(t *testing.T, issuer, subject, subjectRegExp string) sgauthority.Identity {
	t.Helper()
	id, err := sgauthority.NewIdentity(issuer, "", subject, subjectRegExp)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestKeylessBundle(t *testing.T) {
	t.Parallel()
	vs, other := registrytest.NewSigstore(t), registrytest.NewSigstore(t)
	release := identity(t, ghIssuer, ghWorkflow, "")
	anchored := identity(t, ghIssuer, "", `^https://github\.com/acme/app/.*$`)
	for _, tc := range []struct {
		name            string
		signer          *registrytest.Sigstore
		subject, issuer string
		id              sgauthority.Identity
		want            []string // Reason parts; nil: verified
	}{
		{name: "right identity", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: release},
		{name: "regexp", signer: vs, subject: ghWorkflow, issuer: ghIssuer, id: anchored},
		{name: "other workflow", signer: vs, subject: "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main", issuer: ghIssuer, id: release,
			want: []string{"no valid signature from a trusted identity: ", `certificate subject "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"`, "matches none of", ghWorkflow}},
		{name: "other issuer", signer: vs, subject: ghWorkflow, issuer: "https://accounts.example.com", id: release,
			want: []string{"no valid signature from a trusted identity: ", `from issuer "https://accounts.example.com"`, "matches none of"}},
		{name: "untrusted CA", signer: other, subject: ghWorkflow, issuer: ghIssuer, id: release,
			want: []string{"no valid signature from a trusted identity: certificate not issued by a Fulcio CA of TrustRoot corp"}},
		{name: "prefix of anchored regexp", signer: vs, subject: "https://github.com/acme/app.evil/.github/workflows/release.yml@refs/heads/main", issuer: ghIssuer, id: anchored,
			want: []string{"no valid signature from a trusted identity: ", `"https://github.com/acme/app.evil/`, "matches none of", `subject ~ "^https://github\\.com/acme/app/.*$"`}},
		{name: "long subject capped", signer: vs, subject: ghWorkflow + strings.Repeat("x", 300), issuer: ghIssuer, id: release,
			want: []string{"no valid signature from a trusted identity: ", "x…\" from issuer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			reg.AttachBundle(t, d, tc.signer.Bundle(t, d, tc.subject, tc.issuer))
			v := newVerifier(t, reg, verifier.Options{})
			set := newSet(t, 1, keylessAuthority(t, "release", vs, tc.id))
			res, err := v.Verify(t.Context(), d, set)
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
					t.Errorf("Reason %q does not contain %q", nv.Reason, w)
				}
			}
		})
	}
}

// TestKeylessSeveralCAs: a trusted root that lists several Fulcio CAs
// (a rotated intermediate, two instances) tries each; read from its
// trusted_root.json as a TrustRoot is.
func TestKeylessSeveralCAs(t *testing.T) {
	t.Parallel()
	old, current := registrytest.NewSigstore(t), registrytest.NewSigstore(t)
	both := root.TrustedMaterialCollection{old.Material(), current.Material()}
	parsed, err := bundle.ParseTrustedRoot(current.TrustedRootJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, material := range map[string]root.TrustedMaterial{"two instances": both, "from trusted_root.json": parsed} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			reg.SignKeyless(t, current, d, ghWorkflow, ghIssuer)
			k, err := sgauthority.NewKeyless(sgauthority.TrustRoot{Name: "corp", Material: material, Digest: name}, []sgauthority.Identity{identity(t, ghIssuer, ghWorkflow, "")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			v := newVerifier(t, reg, verifier.Options{})
			if res, err := v.Verify(t.Context(), d, newSet(t, 1, verifier.Authority{Name: "release", Keyless: k})); err != nil || len(res.Verified) != 1 {
				t.Errorf("Verify = %+v, %v; want verified by release", res, err)
			}
		})
	}
}

// TestKeylessThresholdCountsSigners: two authorities satisfied by one
// certificate identity count once.
func TestKeylessThresholdCountsSigners(t *testing.T) {
	t.Parallel()
	vs := registrytest.NewSigstore(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.AttachBundle(t, d, vs.Bundle(t, d, ghWorkflow, ghIssuer))
	v := newVerifier(t, reg, verifier.Options{})
	set := newSet(t, 2,
		keylessAuthority(t, "exact", vs, identity(t, ghIssuer, ghWorkflow, "")),
		keylessAuthority(t, "org", vs, identity(t, ghIssuer, "", `^https://github\.com/acme/.*$`)))
	_, err := v.Verify(t.Context(), d, set)
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) {
		t.Fatalf("Verify = %v; want not verified", err)
	}
	if !strings.Contains(nv.Reason, "only 1 of the 2 required") {
		t.Errorf("Reason = %q", nv.Reason)
	}

	// A second signer for one of them reaches the threshold.
	reg.AttachBundle(t, d, vs.Bundle(t, d, "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main", ghIssuer))
	v = newVerifier(t, reg, verifier.Options{})
	res, err := v.Verify(t.Context(), d, set)
	if err != nil {
		t.Fatalf("Verify with two signers: %v", err)
	}
	if strings.Join(res.Verified, ",") != "exact,org" {
		t.Errorf("Verified = %v", res.Verified)
	}
}

// TestKeylessClassicKeySigned: a classic signature made with a key never
// satisfies a keyless authority, and the details say why.
func TestKeylessClassicKeySigned(t *testing.T) {
	t.Parallel()
	vs := registrytest.NewSigstore(t)
	reg, _, d := signedApp(t)
	v := newVerifier(t, reg, verifier.Options{})
	_, err := v.Verify(t.Context(), d, newSet(t, 1, keylessAuthority(t, "release", vs, identity(t, ghIssuer, ghWorkflow, ""))))
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) {
		t.Fatalf("Verify = %v; want not verified", err)
	}
	if !strings.Contains(strings.Join(nv.Details, "\n"), "signed with a key, not a certificate") {
		t.Errorf("Details = %q", nv.Details)
	}
}

// TestKeylessCached: a keyless verdict is served from the cache without
// registry requests, verified or not.
func TestKeylessCached(t *testing.T) {
	t.Parallel()
	vs := registrytest.NewSigstore(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.AttachBundle(t, d, vs.Bundle(t, d, ghWorkflow, ghIssuer))
	v := newVerifier(t, reg, verifier.Options{})
	good := newSet(t, 1, keylessAuthority(t, "release", vs, identity(t, ghIssuer, ghWorkflow, "")))
	bad := newSet(t, 1, keylessAuthority(t, "ci", vs, identity(t, ghIssuer, "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main", "")))
	if _, err := v.Verify(t.Context(), d, good); err != nil {
		t.Fatal(err)
	}
	_, badErr := v.Verify(t.Context(), d, bad)
	if badErr == nil {
		t.Fatal("verified with the wrong identity")
	}
	reg.ResetRequests()
	res, err := v.Verify(t.Context(), d, good)
	if err != nil || !res.Cached || len(res.Verified) != 1 || res.Verified[0] != "release" {
		t.Errorf("second Verify = %+v, %v; want cached [release]", res, err)
	}
	_, err = v.Verify(t.Context(), d, bad)
	if err == nil || err.Error() != badErr.Error() {
		t.Errorf("second Verify (wrong identity) = %v, want %v", err, badErr)
	}
	if n := reg.Requests(); n != 0 {
		t.Errorf("%d registry requests for cached verdicts: %v", n, reg.RequestLog())
	}
}

// TestKeylessOneTrustRootManyIdentities: authorities of one trust root
// share one verification of the signature; each matches its own
// identities on the verified certificate.
func TestKeylessOneTrustRootManyIdentities(t *testing.T) {
	t.Parallel()
	vs := registrytest.NewSigstore(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.SignKeyless(t, vs, d, ghWorkflow, ghIssuer)
	v := newVerifier(t, reg, verifier.Options{CacheSize: -1})
	nightly := keylessAuthority(t, "nightly", vs, identity(t, ghIssuer, "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main", ""))
	release := keylessAuthority(t, "release", vs, identity(t, ghIssuer, ghWorkflow, ""))
	res, err := v.Verify(t.Context(), d, newSet(t, 1, nightly, release))
	if err != nil || len(res.Verified) != 1 || res.Verified[0] != "release" {
		t.Errorf("Verify = %+v, %v; want verified by release only", res, err)
	}
	_, err = v.Verify(t.Context(), d, newSet(t, 1, nightly))
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) || !strings.Contains(nv.Reason, `matches none of: subject "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main"`) {
		t.Errorf("nightly only: %v; want the identity named", err)
	}
}
