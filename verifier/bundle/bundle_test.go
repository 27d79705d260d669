package bundle_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/verifier/bundle"
)

const (
	san    = "alice@example.com"
	issuer = "https://issuer.example.com"
)

var artifact = []byte("hello, signgate\n")

// noCT is the virtual Sigstore without its CT log: the virtual Fulcio
// issues no SCTs.
type noCT struct{ *ca.VirtualSigstore }

func (noCT) CTLogs() map[string]*root.TransparencyLog { return nil }

func newVirtual(t *testing.T) *ca.VirtualSigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func identity(s, i string) bundle.Policy {
	return bundle.Policy{Identity: &bundle.Identity{SAN: s, Issuer: i}}
}

func wantRejected(t *testing.T, err error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatal("verified, want rejected")
	}
	if !errors.Is(err, bundle.ErrNotVerified) {
		t.Errorf("error %q does not wrap ErrNotVerified", err)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Errorf("error %q, want it to mention %q", err, contains)
	}
}

func TestKeylessHappyPath(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	res, err := bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, identity(san, issuer))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.SAN != san || res.Issuer != issuer || res.Keyed {
		t.Errorf("result = %+v", res)
	}
	// The log's integrated time and the TSA's timestamp: two verified times.
	if len(res.Timestamps) != 2 {
		t.Errorf("verified timestamps = %v, want 2", res.Timestamps)
	}
	d := sha256.Sum256(artifact)
	if _, err := bundle.Verify(e, bundle.Artifact{SHA256: d[:]}, noCT{vs}, identity(san, issuer)); err != nil {
		t.Errorf("Verify by digest: %v", err)
	}
}

func TestIdentityMatchedExactly(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []bundle.Policy{
		identity("alice@example.co", issuer),    // prefix
		identity(".*@example.com", issuer),      // no regular expressions
		identity("ALICE@example.com", issuer),   // case matters
		identity(san, "https://issuer.example"), // issuer prefix
		identity(san, issuer+"/"),               // issuer suffix
		identity(san, "https://other.example.com"),
	} {
		_, err := bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, p)
		wantRejected(t, err, "")
	}
}

func TestArtifactMismatch(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(e, bundle.Artifact{Data: []byte("something else")}, noCT{vs}, identity(san, issuer))
	wantRejected(t, err, "")
	d := sha256.Sum256([]byte("something else"))
	_, err = bundle.Verify(e, bundle.Artifact{SHA256: d[:]}, noCT{vs}, identity(san, issuer))
	wantRejected(t, err, "")
}

// TestSigningTimeOutsideLeafValidity: the log's verified integrated time
// lies after the 10-minute leaf certificate expired.
func TestSigningTimeOutsideLeafValidity(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.SignAtTime(san, issuer, artifact, time.Now().Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, identity(san, issuer))
	wantRejected(t, err, "certificate")
}

// TestSCTsRequiredWhenRootHasCTLogs: the virtual Fulcio issues no SCTs;
// with its CT log in the trusted root the bundle is rejected.
func TestSCTsRequiredWhenRootHasCTLogs(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(e, bundle.Artifact{Data: artifact}, vs, identity(san, issuer))
	wantRejected(t, err, "signed certificate timestamp")
}

// noLog is a signed entity without its transparency log entries, as
// cosign writes it with --tlog-upload=false.
type noLog struct{ verify.SignedEntity }

func (noLog) TlogEntries() ([]*tlog.Entry, error) { return nil, nil }

// noTimes is noLog without RFC 3161 timestamps either.
type noTimes struct{ noLog }

func (noTimes) Timestamps() ([][]byte, error) { return nil, nil }

// tsaOnly is the virtual Sigstore as a deployment without transparency
// logs: Fulcio and the TSA only.
type tsaOnly struct{ *ca.VirtualSigstore }

func (tsaOnly) CTLogs() map[string]*root.TransparencyLog    { return nil }
func (tsaOnly) RekorLogs() map[string]*root.TransparencyLog { return nil }

// TestLogRequiredWhenRootHasLogs: a keyless signature without a log
// entry is rejected under a trusted root that lists transparency logs,
// and verified, at its TSA time, under one that lists none; without a
// TSA timestamp either it has no signing time and is rejected.
func TestLogRequiredWhenRootHasLogs(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(noLog{e}, bundle.Artifact{Data: artifact}, noCT{vs}, identity(san, issuer))
	wantRejected(t, err, "")
	if !errors.Is(err, bundle.ErrTransparencyLog) {
		t.Errorf("no log entry under a root with logs: %v, want ErrTransparencyLog", err)
	}
	res, err := bundle.Verify(noLog{e}, bundle.Artifact{Data: artifact}, tsaOnly{vs}, identity(san, issuer))
	if err != nil {
		t.Fatalf("no log entry under a root without logs: %v", err)
	}
	if len(res.Timestamps) != 1 {
		t.Errorf("verified timestamps = %v, want the TSA's only", res.Timestamps)
	}
	_, err = bundle.Verify(noTimes{noLog{e}}, bundle.Artifact{Data: artifact}, tsaOnly{vs}, identity(san, issuer))
	wantRejected(t, err, "")
	if !errors.Is(err, bundle.ErrTimestamp) {
		t.Errorf("neither a log entry nor a timestamp: %v, want ErrTimestamp", err)
	}
}

// TestUntrustedFulcio: a chain from another Fulcio is rejected.
func TestUntrustedFulcio(t *testing.T) {
	t.Parallel()
	vs, other := newVirtual(t), newVirtual(t)
	e, err := other.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, identity(san, issuer))
	wantRejected(t, err, "")
}

// TestKeyWithCertificateBundle: a certificate bundle verifies with a key
// only when the certificate holds that key.
func TestKeyWithCertificateBundle(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := e.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	res, err := bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, bundle.Policy{Key: vc.Certificate().PublicKey})
	if err != nil {
		t.Fatalf("Verify with the certificate's key: %v", err)
	}
	if !res.Keyed {
		t.Errorf("result = %+v, want Keyed", res)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err = bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, bundle.Policy{Key: other.Public()})
	wantRejected(t, err, "does not hold the given key")
}

func TestBadPolicy(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, p := range map[string]bundle.Policy{
		"none":     {},
		"both":     {Key: k.Public(), Identity: &bundle.Identity{SAN: san, Issuer: issuer}},
		"noIssuer": identity(san, ""),
		"noSAN":    identity("", issuer),
	} {
		_, err := bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, p)
		if err == nil || errors.Is(err, bundle.ErrNotVerified) {
			t.Errorf("%s: err = %v, want a policy error", name, err)
		}
	}
	if _, err := bundle.Verify(e, bundle.Artifact{SHA256: []byte{1, 2}}, noCT{vs}, identity(san, issuer)); err == nil {
		t.Error("short digest accepted")
	}
}

// entity is a DSSE signed entity built from parts, for chains the virtual
// Sigstore does not issue.
type entity struct {
	leaf    *x509.Certificate
	env     *dsse.Envelope
	entries []*tlog.Entry
}

func (e *entity) HasInclusionPromise() bool { return true }
func (e *entity) HasInclusionProof() bool   { return true }
func (e *entity) Version() (string, error)  { return "v0.3", nil }
func (e *entity) Timestamps() ([][]byte, error) {
	return nil, nil
}
func (e *entity) TlogEntries() ([]*tlog.Entry, error) { return e.entries, nil }
func (e *entity) SignatureContent() (verify.SignatureContent, error) {
	return &sgbundle.Envelope{Envelope: e.env}, nil
}
func (e *entity) VerificationContent() (verify.VerificationContent, error) {
	return sgbundle.NewCertificate(e.leaf), nil
}

// customFulcio is the virtual Sigstore's log with another Fulcio CA.
type customFulcio struct {
	root.BaseTrustedMaterial
	vs *ca.VirtualSigstore
	ca *root.FulcioCertificateAuthority
}

func (c customFulcio) FulcioCertificateAuthorities() []root.CertificateAuthority {
	return []root.CertificateAuthority{c.ca}
}
func (c customFulcio) RekorLogs() map[string]*root.TransparencyLog { return c.vs.RekorLogs() }

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub any, priv any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// attestWithIntermediate signs an in-toto statement over artifact with a
// leaf valid now, issued by an intermediate valid from notBefore to
// notAfter, logs it in the virtual log at the current time and returns the
// entity with a trusted root holding that Fulcio CA.
func attestWithIntermediate(t *testing.T, notBefore, notAfter time.Time) (verify.SignedEntity, root.TrustedMaterial) {
	t.Helper()
	vs := newVirtual(t)
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-root"},
		NotBefore: now.Add(-10 * time.Hour), NotAfter: now.Add(10 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	rootCert := mustCert(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interCert := mustCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test-intermediate"},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true, IsCA: true,
	}, rootCert, interKey.Public(), rootKey)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf, err := ca.GenerateLeafCert(san, issuer, now.Add(-5*time.Minute), leafKey, interCert, interKey)
	if err != nil {
		t.Fatal(err)
	}

	d := sha256.Sum256(artifact)
	stmt := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` +
		hex.EncodeToString(d[:]) + `"}}],"predicateType":"https://example.com/p","predicate":{}}`
	signer, err := signature.LoadECDSASignerVerifier(leafKey, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	es, err := dsse.NewEnvelopeSigner(&sigdsse.SignerAdapter{SignatureSigner: signer, Pub: &leafKey.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), "application/vnd.in-toto+json", []byte(stmt))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := vs.GenerateTlogEntry(leaf, env, sig, now.Unix(), true)
	if err != nil {
		t.Fatal(err)
	}
	tm := customFulcio{vs: vs, ca: &root.FulcioCertificateAuthority{
		Root: rootCert, Intermediates: []*x509.Certificate{interCert},
		ValidityPeriodStart: now.Add(-10 * time.Hour), ValidityPeriodEnd: now.Add(10 * time.Hour),
	}}
	return &entity{leaf: leaf, env: env, entries: []*tlog.Entry{entry}}, &tm
}

// TestIntermediateExpiredAtSigningTime: the same construction verifies with
// an intermediate valid at the log's integrated time and is rejected with
// one that expired an hour before it.
func TestIntermediateExpiredAtSigningTime(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e, tm := attestWithIntermediate(t, now.Add(-3*time.Hour), now.Add(3*time.Hour))
	if _, err := bundle.Verify(e, bundle.Artifact{Data: artifact}, tm, identity(san, issuer)); err != nil {
		t.Fatalf("valid intermediate: %v", err)
	}
	e, tm = attestWithIntermediate(t, now.Add(-3*time.Hour), now.Add(-time.Hour))
	_, err := bundle.Verify(e, bundle.Artifact{Data: artifact}, tm, identity(san, issuer))
	wantRejected(t, err, "certificate")
}

// TestConformanceRules names the public conformance cases behind rules the
// virtual Sigstore cannot produce, and checks each is rejected for it.
func TestConformanceRules(t *testing.T) {
	t.Parallel()
	byName := map[string]conformanceCase{}
	for _, c := range conformanceCases(t) {
		byName[c.Name] = c
	}
	for _, tc := range []struct{ rule, name, contains string }{
		{"message digest must match the artifact", "message-digest-mismatch_fail", ""},
		{"TSA timestamp outside the certificate's validity", "intoto-tsa-timestamp-outside-cert-validity_fail", "certificate"},
		{"log time outside the certificate's validity", "intoto-set-outside-signing-cert-validity_fail", "certificate"},
		{"expired leaf", "intoto-expired-certificate_fail", ""},
		{"Rekor v2 entry needs a TSA timestamp", "rekor2-no-timestamp_fail", "timestamp"},
		{"log entry for this artifact", "wrong-hashedrekord-artifact_fail", ""},
		{"log entry for this signature and certificate", "wrong-hashedrekord-cert-and-sig_fail", ""},
		{"log entry for this envelope", "intoto-log-entry-mismatch_fail", ""},
		{"SET signature verified", "set-invalid-signature_fail", ""},
		{"inclusion proof verified", "invalid-inclusion-proof_fail", ""},
		{"SCT verified against the root's CT logs", "invalid-ct-key_fail", ""},
		{"TSA of the trusted root only", "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail", ""},
		{"wrong key", "managed-key-wrong-key_fail", ""},
		{"key bundle without a key", "managed-key-no-key_fail", "signed with a key"},
		{"untrusted identity", "integrated-time-in-future_fail", ""},
	} {
		c, ok := byName[tc.name]
		if !ok {
			t.Errorf("%s: no case %s", tc.rule, tc.name)
			continue
		}
		err := runCase(c)
		if err == nil {
			t.Errorf("%s (%s): accepted", tc.rule, filepath.Base(c.Dir))
			continue
		}
		if !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s (%s): error %q, want it to mention %q", tc.rule, tc.name, err, tc.contains)
		}
	}
	for _, name := range []string{"managed-key-happy-path", "managed-key-and-trusted-root", "rekor2-happy-path", "rekor2-timestamp-with-expired-cert-chain"} {
		if err := runCase(byName[name]); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestKeySignature: a key bundle (managed-key-happy-path) verifies with its
// key, not with another key, not over another artifact, and not keyless.
func TestKeySignature(t *testing.T) {
	t.Parallel()
	var c conformanceCase
	for _, cc := range conformanceCases(t) {
		if cc.Name == "managed-key-happy-path" {
			c = cc
		}
	}
	if err := runCase(c); err != nil {
		t.Fatalf("with its key: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	data, err := os.ReadFile(c.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	trData, err := os.ReadFile(c.TrustedRoot)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := bundle.ParseTrustedRoot(trData)
	if err != nil {
		t.Fatal(err)
	}
	art, err := os.ReadFile(c.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(b, bundle.Artifact{Data: art}, tr, bundle.Policy{Key: other.Public()})
	wantRejected(t, err, "")

	kd, err := os.ReadFile(c.Key)
	if err != nil {
		t.Fatal(err)
	}
	key, err := authority.ParsePublicKey(kd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := bundle.Verify(b, bundle.Artifact{Data: art}, tr, bundle.Policy{Key: key})
	if err != nil || !res.Keyed || res.SAN != "" {
		t.Fatalf("with its key: %+v, %v", res, err)
	}
	_, err = bundle.Verify(b, bundle.Artifact{Data: []byte("other")}, tr, bundle.Policy{Key: key})
	wantRejected(t, err, "")
	_, err = bundle.Verify(b, bundle.Artifact{Data: art}, tr, identity(san, issuer))
	wantRejected(t, err, "signed with a key")
}

// TestKeylessMatch: Policy.Match decides on the verified SAN, issuer and
// extensions; its rejection is a *MatchError.
func TestKeylessMatch(t *testing.T) {
	t.Parallel()
	vs := newVirtual(t)
	e, err := vs.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	res, err := bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, bundle.Policy{
		Match: func(s, i string, ext certificate.Extensions) error {
			got = append(got, s, i, ext.Issuer)
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if strings.Join(got, " ") != san+" "+issuer+" "+issuer || res.SAN != san || res.Issuer != issuer || res.Extensions.Issuer != issuer {
		t.Errorf("Match saw %q, result %+v", got, res)
	}
	no := errors.New("not this one")
	_, err = bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, bundle.Policy{
		Match: func(string, string, certificate.Extensions) error { return no },
	})
	wantRejected(t, err, "not this one")
	var me *bundle.MatchError
	if !errors.As(err, &me) || !errors.Is(err, no) {
		t.Errorf("error %v is not a MatchError wrapping Match's", err)
	}
	// Chain, log and time are checked before Match is asked.
	other := newVirtual(t)
	e2, err := other.Sign(san, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(e2, bundle.Artifact{Data: artifact}, noCT{vs}, bundle.Policy{
		Match: func(string, string, certificate.Extensions) error {
			t.Error("Match called for an untrusted chain")
			return nil
		},
	})
	wantRejected(t, err, "")
	if !errors.Is(err, bundle.ErrUntrustedCertificate) {
		t.Errorf("untrusted chain: %v, want ErrUntrustedCertificate", err)
	}
	late, err := vs.SignAtTime(san, issuer, artifact, time.Now().Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bundle.Verify(late, bundle.Artifact{Data: artifact}, noCT{vs}, bundle.Policy{
		Match: func(string, string, certificate.Extensions) error { return nil },
	})
	wantRejected(t, err, "")
	if errors.Is(err, bundle.ErrUntrustedCertificate) {
		t.Errorf("signed after expiry: %v, classified untrusted", err)
	}
	// Exactly one of key, identity and match.
	_, err = bundle.Verify(e, bundle.Artifact{Data: artifact}, noCT{vs}, bundle.Policy{
		Identity: &bundle.Identity{SAN: san, Issuer: issuer},
		Match:    func(string, string, certificate.Extensions) error { return nil },
	})
	if err == nil || errors.Is(err, bundle.ErrNotVerified) {
		t.Errorf("identity and match: %v, want a policy error", err)
	}
}
