package registrytest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
)

// The annotations of a classic keyless signature layer, as cosign writes
// them.
const (
	CertificateAnnotation = "dev.sigstore.cosign/certificate"
	ChainAnnotation       = "dev.sigstore.cosign/chain"
	RekorBundleAnnotation = "dev.sigstore.cosign/bundle"
	TimestampAnnotation   = "dev.sigstore.cosign/rfc3161timestamp"
)

// ClassicOption changes a classic keyless signature (SignKeylessClassic),
// mostly to make it one a verifier must reject.
type ClassicOption func(*classicOptions)

type classicOptions struct {
	claimed      *name.Digest
	at           time.Time
	noRekor      bool
	noTimestamp  bool
	foreignRekor bool
	certPEM      []byte
	dsseEntry    bool
}

// ClassicClaim makes the payload name claimed instead of the signed
// image.
func ClassicClaim(claimed name.Digest) ClassicOption {
	return func(o *classicOptions) { o.claimed = &claimed }
}

// ClassicLoggedAt sets the log entry's integrated time (default: 5
// minutes from now, inside the 10-minute validity of the leaf
// certificate, which starts now).
func ClassicLoggedAt(at time.Time) ClassicOption {
	return func(o *classicOptions) { o.at = at }
}

// ClassicNoRekorBundle leaves out the Rekor bundle annotation (no log
// entry, no SET).
func ClassicNoRekorBundle() ClassicOption { return func(o *classicOptions) { o.noRekor = true } }

// ClassicNoTimestamp leaves out the RFC 3161 timestamp annotation.
func ClassicNoTimestamp() ClassicOption { return func(o *classicOptions) { o.noTimestamp = true } }

// ClassicForeignRekorBundle puts the Rekor bundle (body and SET, both
// valid) of another signature, by another certificate over another
// payload, in the annotation.
func ClassicForeignRekorBundle() ClassicOption {
	return func(o *classicOptions) { o.foreignRekor = true }
}

// ClassicCertificatePEM replaces the certificate annotation, e.g. with a
// PEM public key (cosign's GHSA-fx35-mq7g-6g98).
func ClassicCertificatePEM(pemBytes []byte) ClassicOption {
	return func(o *classicOptions) { o.certPEM = pemBytes }
}

// SignKeylessClassic attaches a classic keyless signature of d by
// subject and issuer, certified by s, as `cosign sign` without
// --new-bundle-format writes it: a layer of the sha256-<hex>.sig image
// with the simple-signing payload, the signature, the leaf certificate,
// the chain, the Rekor bundle (hashedrekord entry and SET from s's log)
// and the RFC 3161 timestamp from s's TSA as annotations.
func (r *Registry) SignKeylessClassic(t testing.TB, s *Sigstore, d name.Digest, subject, issuer string, opts ...ClassicOption) {
	t.Helper()
	o := classicOptions{at: time.Now().Add(5 * time.Minute)}
	for _, opt := range opts {
		opt(&o)
	}
	claimed := d
	if o.claimed != nil {
		claimed = *o.claimed
	}
	payload, err := (&sigpayload.Cosign{Image: claimed}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	layer := s.classicLayer(t, payload, subject, issuer, o.at)
	if o.foreignRekor {
		other := s.classicLayer(t, []byte(`{"other":"payload"}`), subject, issuer, o.at)
		layer.annotations[RekorBundleAnnotation] = other.annotations[RekorBundleAnnotation]
	}
	if o.noRekor {
		delete(layer.annotations, RekorBundleAnnotation)
	}
	if o.noTimestamp {
		delete(layer.annotations, TimestampAnnotation)
	}
	if o.certPEM != nil {
		layer.annotations[CertificateAnnotation] = string(o.certPEM)
	}
	if err := r.attachClassic(d, payload, layer.b64sig, layer.annotations); err != nil {
		t.Fatalf("registrytest: sign %s (classic keyless): %v", d, err)
	}
}

type classicLayer struct {
	b64sig      string
	annotations map[string]string
}

// classicLayer signs payload with a fresh leaf certificate for
// subject/issuer, logged by s at the integrated time at and timestamped
// now by s's TSA.
func (s *Sigstore) classicLayer(t testing.TB, payload []byte, subject, issuer string, at time.Time) classicLayer {
	t.Helper()
	var (
		leaf  *x509.Certificate
		chain []*x509.Certificate
		sig   []byte
		tsr   []byte
		rp    tlog.RekorPayload
	)
	if s.fulcio != nil {
		leaf, chain, sig, tsr, rp = s.signOwnCA(t, payload, subject, issuer, at)
	} else {
		leaf, chain, sig, tsr, rp = s.signVS(t, payload, subject, issuer, at)
	}
	leafPEM, err := cryptoutils.MarshalCertificateToPEM(leaf)
	if err != nil {
		t.Fatal(err)
	}
	var chainPEM []byte
	for _, c := range chain {
		p, err := cryptoutils.MarshalCertificateToPEM(c)
		if err != nil {
			t.Fatal(err)
		}
		chainPEM = append(chainPEM, p...)
	}
	set, err := s.VS.RekorSignPayload(rp)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := json.Marshal(cbundle.RekorBundle{
		SignedEntryTimestamp: set,
		Payload: cbundle.RekorPayload{
			Body:           rp.Body,
			IntegratedTime: rp.IntegratedTime,
			LogIndex:       rp.LogIndex,
			LogID:          rp.LogID,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := json.Marshal(cbundle.RFC3161Timestamp{SignedRFC3161Timestamp: tsr})
	if err != nil {
		t.Fatal(err)
	}
	return classicLayer{b64sig: base64.StdEncoding.EncodeToString(sig), annotations: map[string]string{
		CertificateAnnotation: string(leafPEM),
		ChainAnnotation:       string(chainPEM),
		RekorBundleAnnotation: string(rb),
		TimestampAnnotation:   string(ts),
	}}
}

// signVS signs with the virtual Sigstore's own Fulcio CA: its leaf
// certificate, chain, signature, TSA response and hashedrekord entry.
func (s *Sigstore) signVS(t testing.TB, payload []byte, subject, issuer string, at time.Time) (*x509.Certificate, []*x509.Certificate, []byte, []byte, tlog.RekorPayload) {
	t.Helper()
	e, err := s.VS.SignAtTime(subject, issuer, payload, at)
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
	ca := s.VS.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	chain := append(append([]*x509.Certificate(nil), ca.Intermediates...), ca.Root)
	entries, err := e.TlogEntries()
	if err != nil || len(entries) != 1 {
		t.Fatalf("registrytest: log entries: %v, %v", entries, err)
	}
	tle := entries[0].TransparencyLogEntry()
	tsrs, err := e.Timestamps()
	if err != nil || len(tsrs) != 1 {
		t.Fatalf("registrytest: timestamps: %v", err)
	}
	return vc.Certificate(), chain, sc.MessageSignatureContent().Signature(), tsrs[0], tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime,
		LogIndex:       tle.LogIndex,
		LogID:          hex.EncodeToString(tle.GetLogId().GetKeyId()),
	}
}

// signOwnCA signs with the Fulcio CA of NewSigstoreIntermediate: a leaf
// certificate valid for 10 minutes from now, and a hashedrekord entry
// written here (the virtual Sigstore's writer uses its own CA only).
func (s *Sigstore) signOwnCA(t testing.TB, payload []byte, subject, issuer string, at time.Time) (*x509.Certificate, []*x509.Certificate, []byte, []byte, tlog.RekorPayload) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.GenerateLeafCert(subject, issuer, time.Now(), priv, s.fulcio.Intermediates[0], s.fulcioKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.LoadECDSASigner(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	tsr, err := s.VS.TimestampResponse(sig)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, err := cryptoutils.MarshalCertificateToPEM(leaf)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(payload)
	body, err := json.Marshal(map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(digest[:])}},
			"signature": map[string]any{
				"content":   base64.StdEncoding.EncodeToString(sig),
				"publicKey": map[string]string{"content": base64.StdEncoding.EncodeToString(leafPEM)},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	logID, err := s.VS.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	chain := append(append([]*x509.Certificate(nil), s.fulcio.Intermediates...), s.fulcio.Root)
	return leaf, chain, sig, tsr, tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(body),
		IntegratedTime: at.Unix(),
		LogIndex:       1000,
		LogID:          logID,
	}
}
