package verifier

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/signgate/signgate/verifier/bundle"
)

// The annotations of a classic keyless signature layer, as cosign writes
// them (pkg/oci/static).
const (
	cosignCertificateAnnotation = "dev.sigstore.cosign/certificate"
	cosignChainAnnotation       = "dev.sigstore.cosign/chain"
	cosignBundleAnnotation      = "dev.sigstore.cosign/bundle"
	cosignTimestampAnnotation   = "dev.sigstore.cosign/rfc3161timestamp"
)

// maxChainCertificates bounds the certificates read from the chain
// annotation (cosign's UnmarshalCertificatesFromPEMLimited uses 10 too).
const maxChainCertificates = 10

// classicError is why a classic keyless layer (a signature or an
// attestation) could not be made into a signed entity: reason is short
// and safe to show (no annotation text); "{kind}" in it names the layer
// (what).
type classicError struct {
	rank   int
	reason string
	kind   string // "" is kindSignature
}

func (e *classicError) Error() string {
	if e.kind == "" {
		return e.what(kindSignature)
	}
	return e.what(e.kind)
}

// forKind words err, which may wrap a *classicError, for a layer of this kind.
func forKind(kind string, err error) error {
	var ce *classicError
	if !errors.As(err, &ce) {
		return err
	}
	c := *ce
	c.kind = kind
	return fmt.Errorf("%w%s", &c, strings.TrimPrefix(err.Error(), ce.Error()))
}

// what is the reason for a layer of this kind.
func (e *classicError) what(kind string) string { return strings.ReplaceAll(e.reason, "{kind}", kind) }

// The kinds of classic keyless layer, as reasons name them.
const (
	kindSignature   = "signature"
	kindAttestation = "attestation"
)

func malformed(reason string) error {
	return &classicError{rank: rankOther, reason: "malformed classic keyless {kind}: " + reason}
}

var (
	errCertIsPublicKey = &classicError{rank: rankUntrusted, reason: "the classic {kind}'s certificate annotation holds a public key, not a certificate"}
	errNoSigningTime   = &classicError{rank: rankUnlogged, reason: "the classic {kind} carries no signing time (neither a Rekor bundle nor an RFC 3161 timestamp annotation)"}
)

// checkKeylessClassic tries a classic signature (s, read by keySignature)
// that carries a certificate against the keyless authorities, on the
// bundle core: classicEntity makes it a v0.1 sigstore bundle, which
// verifyKeyless checks over the simple-signing payload; the claim check
// is the key path's (cosign.SimpleClaimVerifier: the payload names h).
// It reports whether an authority verified.
func checkKeylessClassic(what string, s oci.Signature, h v1.Hash, t *tally) bool {
	payload, err := s.Payload()
	if err != nil {
		t.reject(what, err)
		return false
	}
	b64sig, err := s.Base64Signature()
	if err != nil {
		t.reject(what, err)
		return false
	}
	ann, err := s.Annotations()
	if err != nil {
		t.reject(what, err)
		return false
	}
	entity, err := classicEntity(payload, b64sig, ann)
	if errors.Is(err, errKeySigned) {
		if len(t.keys) == 0 {
			t.reject(what, err)
		}
		return false
	}
	if err != nil {
		if len(t.pendingKeyless()) > 0 {
			var ce *classicError
			if errors.As(err, &ce) {
				t.keylessFailed(ce.rank, ce.what(kindSignature))
			}
			t.reject(what, err)
		}
		return false
	}
	return verifyKeyless(what, entity, bundle.Artifact{Data: payload}, func(bundle.Result) error {
		return cosign.SimpleClaimVerifier(s, h, nil)
	}, t)
}

// classicEntity makes a classic keyless signature a v0.1 sigstore bundle:
// a message signature over the payload with the layer's verification
// material (classicMaterial). Nothing is trusted here; bundle.Verify
// checks all of it. A layer without a certificate annotation is
// errKeySigned.
func classicEntity(payload []byte, b64sig string, ann map[string]string) (*sgbundle.Bundle, error) {
	vm, err := classicMaterial(ann)
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(b64sig)
	if err != nil {
		return nil, malformed("the signature is not base64")
	}
	digest := sha256.Sum256(payload)
	return classicBundle(&protobundle.Bundle{VerificationMaterial: vm, Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
		MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest[:]},
		Signature:     sig,
	}}})
}

// classicAttestationEntity makes a classic keyless attestation (a DSSE
// envelope layer of the .att image, as keyless `cosign attest` writes
// it) a v0.1 sigstore bundle: the envelope as the DSSE content, with the
// layer's verification material (classicMaterial). The Rekor entry
// cosign writes for it is intoto 0.0.2 (dsse 0.0.1 is accepted too);
// sigstore-go checks that it is for this envelope's payload and
// signature. Nothing is trusted here. A layer without a certificate
// annotation is errKeySigned.
func classicAttestationEntity(envelope []byte, ann map[string]string) (*sgbundle.Bundle, error) {
	vm, err := classicMaterial(ann)
	if err != nil {
		return nil, err
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, malformed("the layer is not a DSSE envelope")
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, malformed("the envelope's payload is not base64")
	}
	if len(env.Signatures) != 1 {
		return nil, malformed("the envelope does not have exactly one signature")
	}
	pe := &protodsse.Envelope{Payload: payload, PayloadType: env.PayloadType}
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return nil, malformed("the envelope's signature is not base64")
		}
		pe.Signatures = append(pe.Signatures, &protodsse.Signature{Sig: sig, Keyid: s.KeyID})
	}
	return classicBundle(&protobundle.Bundle{VerificationMaterial: vm, Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: pe}})
}

// classicBundle makes pb (verification material and content) a v0.1
// bundle.
func classicBundle(pb *protobundle.Bundle) (*sgbundle.Bundle, error) {
	pb.MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.1"
	b, err := sgbundle.NewBundle(pb)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", malformed("not a valid signature bundle"), err)
	}
	return b, nil
}

// classicMaterial reads a classic keyless layer's annotations as a
// bundle's verification material: the certificate (and the chain
// annotation's certificates, which sigstore-go does not trust: the chain
// is built from the TrustRoot), the Rekor entry with its SET as the
// inclusion promise, and the RFC 3161 timestamp. A layer without a
// certificate annotation is errKeySigned; one with neither a Rekor
// bundle nor a timestamp is errNoSigningTime.
func classicMaterial(ann map[string]string) (*protobundle.VerificationMaterial, error) {
	certPEM, ok := ann[cosignCertificateAnnotation]
	if !ok {
		return nil, errKeySigned
	}
	leaf, err := parseLeafPEM([]byte(certPEM))
	if err != nil {
		return nil, err
	}
	certs := []*protocommon.X509Certificate{{RawBytes: leaf.Raw}}
	if chainPEM, ok := ann[cosignChainAnnotation]; ok {
		chain, err := parseChainPEM([]byte(chainPEM))
		if err != nil {
			return nil, err
		}
		for _, c := range chain {
			certs = append(certs, &protocommon.X509Certificate{RawBytes: c.Raw})
		}
	}
	vm := &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_X509CertificateChain{
			X509CertificateChain: &protocommon.X509CertificateChain{Certificates: certs},
		},
		TimestampVerificationData: &protobundle.TimestampVerificationData{},
	}
	rekorJSON, hasRekor := ann[cosignBundleAnnotation]
	tsJSON, hasTS := ann[cosignTimestampAnnotation]
	if !hasRekor && !hasTS {
		return nil, errNoSigningTime
	}
	if hasRekor {
		tle, err := rekorEntry([]byte(rekorJSON))
		if err != nil {
			return nil, err
		}
		vm.TlogEntries = []*rekorv1.TransparencyLogEntry{tle}
	}
	if hasTS {
		var ts cbundle.RFC3161Timestamp
		if err := json.Unmarshal([]byte(tsJSON), &ts); err != nil || len(ts.SignedRFC3161Timestamp) == 0 {
			return nil, malformed("unreadable RFC 3161 timestamp annotation")
		}
		vm.TimestampVerificationData.Rfc3161Timestamps = []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts.SignedRFC3161Timestamp}}
	}
	return vm, nil
}

// parseLeafPEM reads the certificate annotation: exactly one PEM
// CERTIFICATE block. A PUBLIC KEY block (cosign's GHSA-fx35-mq7g-6g98) is
// refused by name.
func parseLeafPEM(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(bytes.TrimSpace(data))
	switch {
	case block == nil:
		return nil, malformed("the certificate annotation is not PEM")
	case block.Type == "PUBLIC KEY":
		return nil, errCertIsPublicKey
	case block.Type != "CERTIFICATE":
		return nil, malformed("the certificate annotation is not a PEM certificate")
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, malformed("the certificate annotation holds more than one PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, malformed("the certificate annotation does not parse")
	}
	return cert, nil
}

// parseChainPEM reads the chain annotation: PEM CERTIFICATE blocks, at
// most maxChainCertificates.
func parseChainPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		if len(certs) == maxChainCertificates {
			return nil, malformed("too many certificates in the chain annotation")
		}
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, malformed("the chain annotation is not PEM certificates")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, malformed("a certificate of the chain annotation does not parse")
		}
		certs = append(certs, cert)
		rest = bytes.TrimSpace(rest)
	}
	return certs, nil
}

// rekorEntry makes the Rekor bundle annotation ({SignedEntryTimestamp,
// Payload{body, integratedTime, logIndex, logID}}) a transparency log
// entry whose inclusion promise is the SET. The kind and version are
// read from the body; sigstore-go checks the SET over the body, time,
// index and log ID, and that the body is for this signature,
// certificate and payload.
func rekorEntry(data []byte) (*rekorv1.TransparencyLogEntry, error) {
	var rb cbundle.RekorBundle
	if err := json.Unmarshal(data, &rb); err != nil {
		return nil, malformed("unreadable Rekor bundle annotation")
	}
	bodyB64, ok := rb.Payload.Body.(string)
	if !ok || len(rb.SignedEntryTimestamp) == 0 {
		return nil, malformed("the Rekor bundle annotation has no body or no SET")
	}
	body, err := base64.StdEncoding.DecodeString(bodyB64)
	if err != nil {
		return nil, malformed("the Rekor bundle's body is not base64")
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil || len(logID) == 0 {
		return nil, malformed("the Rekor bundle's log ID is not hex")
	}
	var kv struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(body, &kv); err != nil || kv.Kind == "" || kv.APIVersion == "" {
		return nil, malformed("the Rekor entry body has no kind or version")
	}
	return &rekorv1.TransparencyLogEntry{
		LogIndex:          rb.Payload.LogIndex,
		LogId:             &protocommon.LogId{KeyId: logID},
		KindVersion:       &rekorv1.KindVersion{Kind: kv.Kind, Version: kv.APIVersion},
		IntegratedTime:    rb.Payload.IntegratedTime,
		InclusionPromise:  &rekorv1.InclusionPromise{SignedEntryTimestamp: rb.SignedEntryTimestamp},
		CanonicalizedBody: body,
	}, nil
}
