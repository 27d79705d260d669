package registrytest

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/rekor/pkg/pki"
	rekortypes "github.com/sigstore/rekor/pkg/types"
	"github.com/sigstore/rekor/pkg/types/intoto"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// ClassicDSSEEntry logs a keyless attestation (AttestKeyless) as a dsse
// 0.0.1 Rekor entry instead of cosign's intoto 0.0.2.
func ClassicDSSEEntry() ClassicOption { return func(o *classicOptions) { o.dsseEntry = true } }

// AttestKeyless stores a keyless attestation next to d the way keyless
// `cosign attest` does: a's in-toto statement DSSE-signed with a fresh
// leaf certificate for subject/issuer from s's virtual Fulcio, appended
// as a layer of media type application/vnd.dsse.envelope.v1+json to d's
// sha256-<hex>.att image with the certificate, chain, Rekor bundle (an
// intoto 0.0.2 entry and its SET from s's log; dsse 0.0.1 with
// ClassicDSSEEntry) and RFC 3161 timestamp annotations. Of the
// ClassicOptions, ClassicLoggedAt, ClassicNoRekorBundle,
// ClassicNoTimestamp, ClassicCertificatePEM and ClassicDSSEEntry apply.
// Only a Sigstore of NewSigstore can attest.
func (r *Registry) AttestKeyless(t testing.TB, s *Sigstore, d name.Digest, subject, issuer string, a Attestation, opts ...ClassicOption) {
	t.Helper()
	if s.fulcio != nil {
		t.Fatal("registrytest: AttestKeyless: a Sigstore of NewSigstoreIntermediate cannot attest")
	}
	o := classicOptions{at: time.Now().Add(5 * time.Minute)}
	for _, opt := range opts {
		opt(&o)
	}
	e, err := s.VS.AttestAtTime(subject, issuer, a.statement(t, d), o.at, false)
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
	envelope, err := json.Marshal(sc.(*sgbundle.Envelope).Envelope)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, err := cryptoutils.MarshalCertificateToPEM(vc.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	var chainPEM []byte
	ca := s.VS.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	for _, c := range append(append([]*x509.Certificate(nil), ca.Intermediates...), ca.Root) {
		p, err := cryptoutils.MarshalCertificateToPEM(c)
		if err != nil {
			t.Fatal(err)
		}
		chainPEM = append(chainPEM, p...)
	}
	entries, err := e.TlogEntries()
	if err != nil || len(entries) != 1 {
		t.Fatalf("registrytest: log entries: %v, %v", entries, err)
	}
	body := entries[0].TransparencyLogEntry().CanonicalizedBody
	if !o.dsseEntry {
		body = intotoEntry(t, envelope, leafPEM)
	}
	logID, err := s.VS.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	rp := tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(body),
		IntegratedTime: o.at.Unix(),
		LogIndex:       1000,
		LogID:          logID,
	}
	set, err := s.VS.RekorSignPayload(rp)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := json.Marshal(cbundle.RekorBundle{
		SignedEntryTimestamp: set,
		Payload:              cbundle.RekorPayload{Body: rp.Body, IntegratedTime: rp.IntegratedTime, LogIndex: rp.LogIndex, LogID: rp.LogID},
	})
	if err != nil {
		t.Fatal(err)
	}
	tsrs, err := e.Timestamps()
	if err != nil || len(tsrs) != 1 {
		t.Fatalf("registrytest: timestamps: %v", err)
	}
	ts, err := json.Marshal(cbundle.RFC3161Timestamp{SignedRFC3161Timestamp: tsrs[0]})
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{
		CertificateAnnotation: string(leafPEM),
		ChainAnnotation:       string(chainPEM),
		RekorBundleAnnotation: string(rb),
		TimestampAnnotation:   string(ts),
	}
	if o.noRekor {
		delete(ann, RekorBundleAnnotation)
	}
	if o.noTimestamp {
		delete(ann, TimestampAnnotation)
	}
	if o.certPEM != nil {
		ann[CertificateAnnotation] = string(o.certPEM)
	}
	r.attachAttestation(t, d, a, envelope, ann)
}

// intotoEntry is the canonical body of the intoto 0.0.2 Rekor entry
// cosign makes for an attestation (cosign's intotoEntry): the envelope
// and the certificate.
func intotoEntry(t testing.TB, envelope, certPEM []byte) []byte {
	t.Helper()
	ctx := context.Background()
	pe, err := rekortypes.NewProposedEntry(ctx, intoto.KIND, "0.0.2", rekortypes.ArtifactProperties{
		ArtifactBytes:  envelope,
		PublicKeyBytes: [][]byte{certPEM},
		PKIFormat:      string(pki.X509),
	})
	if err != nil {
		t.Fatalf("registrytest: intoto entry: %v", err)
	}
	impl, err := rekortypes.CreateVersionedEntry(pe)
	if err != nil {
		t.Fatalf("registrytest: intoto entry: %v", err)
	}
	body, err := rekortypes.CanonicalizeEntry(ctx, impl)
	if err != nil {
		t.Fatalf("registrytest: intoto entry: %v", err)
	}
	return body
}
