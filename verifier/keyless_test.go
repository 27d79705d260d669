package verifier_test

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	intotov1 "github.com/in-toto/attestation/go/v1"
	cosigntypes "github.com/sigstore/cosign/v2/pkg/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sgauthority "github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

const (
	ghIssuer   = "https://token.actions.githubusercontent.com"
	ghWorkflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
)

// noCTLogs is a virtual Sigstore without its CT log: its Fulcio issues no
// SCTs.
type noCTLogs struct{ *ca.VirtualSigstore }

func (noCTLogs) CTLogs() map[string]*root.TransparencyLog { return nil }

func newVirtualSigstore(t *testing.T) *ca.VirtualSigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// keylessBundle signs d's cosign statement with a certificate for
// subject/issuer from vs, logged and timestamped by vs, and returns the
// v0.3 bundle JSON `cosign sign --new-bundle-format` would attach.
func keylessBundle(t *testing.T, vs *ca.VirtualSigstore, d name.Digest, subject, issuer string) []byte {
	t.Helper()
	alg, hexDigest, _ := strings.Cut(d.DigestStr(), ":")
	statement, err := protojson.Marshal(&intotov1.Statement{
		Type:          intotov1.StatementTypeUri,
		Subject:       []*intotov1.ResourceDescriptor{{Digest: map[string]string{alg: hexDigest}}},
		PredicateType: cosigntypes.CosignSignPredicateType,
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := vs.AttestAtTime(subject, issuer, statement, time.Now().Add(5*time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := e.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := e.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	env := sc.(*sgbundle.Envelope).Envelope
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	pe := &protodsse.Envelope{Payload: payload, PayloadType: env.PayloadType}
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			t.Fatal(err)
		}
		pe.Signatures = append(pe.Signatures, &protodsse.Signature{Sig: sig, Keyid: s.KeyID})
	}
	entries, _ := e.TlogEntries()
	var tles []*rekorv1.TransparencyLogEntry
	for _, entry := range entries {
		tle := proto.Clone(entry.TransparencyLogEntry()).(*rekorv1.TransparencyLogEntry)
		tle.KindVersion = &rekorv1.KindVersion{Kind: "dsse", Version: "0.0.1"}
		set, err := vs.RekorSignPayload(tlog.RekorPayload{
			Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
			IntegratedTime: tle.IntegratedTime,
			LogIndex:       tle.LogIndex,
			LogID:          hex.EncodeToString(tle.LogId.KeyId),
		})
		if err != nil {
			t.Fatal(err)
		}
		tle.InclusionPromise = &rekorv1.InclusionPromise{SignedEntryTimestamp: set}
		tles = append(tles, tle)
	}
	tsrs, _ := e.Timestamps()
	tvd := &protobundle.TimestampVerificationData{}
	for _, tsr := range tsrs {
		tvd.Rfc3161Timestamps = append(tvd.Rfc3161Timestamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: tsr})
	}
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
			TlogEntries:               tles,
			TimestampVerificationData: tvd,
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: pe},
	}
	if _, err := sgbundle.NewBundle(pb); err != nil {
		t.Fatalf("test bundle invalid: %v", err)
	}
	out, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// keylessAuthority trusts identities (issuer, subject or subjectRegExp
// pairs) certified by vs.
func keylessAuthority(t *testing.T, name string, vs *ca.VirtualSigstore, ids ...sgauthority.Identity) verifier.Authority {
	t.Helper()
	k, err := sgauthority.NewKeyless(sgauthority.TrustRoot{Name: "corp", Material: noCTLogs{vs}, Digest: "test-root"}, ids, nil)
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
	vs, other := newVirtualSigstore(t), newVirtualSigstore(t)
	release := identity(t, ghIssuer, ghWorkflow, "")
	anchored := identity(t, ghIssuer, "", `^https://github\.com/acme/app/.*$`)
	for _, tc := range []struct {
		name            string
		signer          *ca.VirtualSigstore
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
			reg.AttachBundle(t, d, keylessBundle(t, tc.signer, d, tc.subject, tc.issuer))
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

// TestKeylessThresholdCountsSigners: two authorities satisfied by one
// certificate identity count once.
func TestKeylessThresholdCountsSigners(t *testing.T) {
	t.Parallel()
	vs := newVirtualSigstore(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.AttachBundle(t, d, keylessBundle(t, vs, d, ghWorkflow, ghIssuer))
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
	reg.AttachBundle(t, d, keylessBundle(t, vs, d, "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main", ghIssuer))
	v = newVerifier(t, reg, verifier.Options{})
	res, err := v.Verify(t.Context(), d, set)
	if err != nil {
		t.Fatalf("Verify with two signers: %v", err)
	}
	if strings.Join(res.Verified, ",") != "exact,org" {
		t.Errorf("Verified = %v", res.Verified)
	}
}

// TestKeylessClassicNotCounted: a classic signature never satisfies a
// keyless authority, and the details say why.
func TestKeylessClassicNotCounted(t *testing.T) {
	t.Parallel()
	vs := newVirtualSigstore(t)
	reg, _, d := signedApp(t)
	v := newVerifier(t, reg, verifier.Options{})
	_, err := v.Verify(t.Context(), d, newSet(t, 1, keylessAuthority(t, "release", vs, identity(t, ghIssuer, ghWorkflow, ""))))
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) {
		t.Fatalf("Verify = %v; want not verified", err)
	}
	if !strings.Contains(strings.Join(nv.Details, "\n"), "sigstore bundles only") {
		t.Errorf("Details = %q", nv.Details)
	}
}

// TestKeylessCached: a keyless verdict is served from the cache without
// registry requests, verified or not.
func TestKeylessCached(t *testing.T) {
	t.Parallel()
	vs := newVirtualSigstore(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.AttachBundle(t, d, keylessBundle(t, vs, d, ghWorkflow, ghIssuer))
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
