package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"math/big"
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
)

// Sigstore is a virtual Sigstore made in the test (sigstore-go's
// pkg/testing/ca): a Fulcio CA issuing certificates for any identity, a
// Rekor log and a TSA. Its Fulcio issues no SCTs, so its trusted root has
// no CT logs.
type Sigstore struct {
	VS *ca.VirtualSigstore

	// fulcio, when set, replaces VS's Fulcio CA (NewSigstoreIntermediate).
	fulcio    *root.FulcioCertificateAuthority
	fulcioKey *ecdsa.PrivateKey // fulcio's intermediate key
}

// NewSigstore makes a virtual Sigstore with fresh keys.
func NewSigstore(t testing.TB) *Sigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return &Sigstore{VS: vs}
}

// NewSigstoreIntermediate makes a virtual Sigstore whose Fulcio CA is a
// fresh root (valid from 5 hours ago to 5 hours from now) with one
// intermediate valid only from notBefore to notAfter. Only
// SignKeylessClassic issues certificates from it; its leaf certificates
// are valid for 10 minutes from now.
func NewSigstoreIntermediate(t testing.TB, notBefore, notAfter time.Time) *Sigstore {
	t.Helper()
	s := NewSigstore(t)
	rootCert, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "sigstore-intermediate", Organization: []string{"sigstore.dev"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, rootCert, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	s.fulcio = &root.FulcioCertificateAuthority{
		Root:                rootCert,
		Intermediates:       []*x509.Certificate{inter},
		ValidityPeriodStart: rootCert.NotBefore,
		ValidityPeriodEnd:   rootCert.NotAfter,
		URI:                 "https://virtual.fulcio.sigstore.dev",
	}
	s.fulcioKey = key
	return s
}

// material is the virtual Sigstore without its CT log, with its Fulcio
// CA replaced when fulcio is set.
type material struct {
	*ca.VirtualSigstore
	fulcio *root.FulcioCertificateAuthority
}

func (material) CTLogs() map[string]*root.TransparencyLog { return nil }

func (m material) FulcioCertificateAuthorities() []root.CertificateAuthority {
	if m.fulcio != nil {
		return []root.CertificateAuthority{m.fulcio}
	}
	return m.VirtualSigstore.FulcioCertificateAuthorities()
}

// Material is s as trust material: its Fulcio CA, log and TSA.
func (s *Sigstore) Material() root.TrustedMaterial { return material{s.VS, s.fulcio} }

// TrustedRootJSON is s as a trusted_root.json, as a TrustRoot or
// --trusted-root takes it.
func (s *Sigstore) TrustedRootJSON(t testing.TB) []byte {
	t.Helper()
	// The virtual log's ID is its hex log ID as bytes; a trusted root
	// carries the raw key ID (the log entries name it hex-encoded).
	logs := map[string]*root.TransparencyLog{}
	for id, l := range s.VS.RekorLogs() {
		raw, err := hex.DecodeString(id)
		if err != nil {
			t.Fatalf("registrytest: log ID %q: %v", id, err)
		}
		c := *l
		c.ID = raw
		logs[id] = &c
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, s.Material().FulcioCertificateAuthorities(), nil, s.VS.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatalf("registrytest: trusted root: %v", err)
	}
	out, err := tr.MarshalJSON()
	if err != nil {
		t.Fatalf("registrytest: trusted root: %v", err)
	}
	return out
}

// SignKeyless attaches a keyless bundle for d by subject and issuer,
// certified by s, as `cosign sign --new-bundle-format` does.
func (r *Registry) SignKeyless(t testing.TB, s *Sigstore, d name.Digest, subject, issuer string) {
	t.Helper()
	r.AttachBundle(t, d, s.Bundle(t, d, subject, issuer))
}

// Bundle signs d's cosign statement with a certificate for
// subject/issuer from the virtual Fulcio, logged and timestamped by s, and returns the
// v0.3 bundle JSON `cosign sign --new-bundle-format` would attach.
func (s *Sigstore) Bundle(t testing.TB, d name.Digest, subject, issuer string) []byte {
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
	return s.dsseBundle(t, statement, subject, issuer)
}

// AttestationBundle is Bundle for a's in-toto statement about d (or
// a.Subject): the v0.3 bundle JSON keyless `cosign attest
// --new-bundle-format` would attach.
func (s *Sigstore) AttestationBundle(t testing.TB, d name.Digest, subject, issuer string, a Attestation) []byte {
	t.Helper()
	return s.dsseBundle(t, a.statement(t, d), subject, issuer)
}

// AttestKeylessBundle attaches s.AttestationBundle as a referrer of d,
// the way keyless `cosign attest --new-bundle-format` does, with
// a.AnnotatedType (default a.PredicateType) as the referrer's
// dev.sigstore.bundle.predicateType annotation.
func (r *Registry) AttestKeylessBundle(t testing.TB, s *Sigstore, d name.Digest, subject, issuer string, a Attestation) {
	t.Helper()
	r.attachAttestationBundle(t, d, a, s.AttestationBundle(t, d, subject, issuer, a))
}

// dsseBundle DSSE-signs statement with a certificate for subject/issuer
// from the virtual Fulcio, logged and timestamped by s, as a v0.3 bundle.
func (s *Sigstore) dsseBundle(t testing.TB, statement []byte, subject, issuer string) []byte {
	t.Helper()
	vs := s.VS
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
