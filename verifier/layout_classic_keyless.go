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

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
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

// classicError is why a classic signature layer could not be made into
// a signed entity: reason is short and safe to show (no annotation text).
type classicError struct {
	rank   int
	reason string
}

func (e *classicError) Error() string { return e.reason }

func malformed(reason string) error {
	return &classicError{rank: rankOther, reason: "malformed classic keyless signature: " + reason}
}

var (
	errCertIsPublicKey = &classicError{rank: rankUntrusted, reason: "the classic signature's certificate annotation holds a public key, not a certificate"}
	errNoSigningTime   = &classicError{rank: rankUnlogged, reason: "the classic signature carries no signing time (neither a Rekor bundle nor an RFC 3161 timestamp annotation)"}
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
				t.keylessFailed(ce.rank, ce.reason)
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
// a message signature over the payload, the certificate (and the chain
// annotation's certificates, which sigstore-go does not trust: the chain
// is built from the TrustRoot), the Rekor entry with its SET as the
// inclusion promise, and the RFC 3161 timestamp. Nothing is trusted here;
// bundle.Verify checks all of it. A layer without a certificate
// annotation is errKeySigned.
func classicEntity(payload []byte, b64sig string, ann map[string]string) (*sgbundle.Bundle, error) {
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
	sig, err := base64.StdEncoding.DecodeString(b64sig)
	if err != nil {
		return nil, malformed("the signature is not base64")
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
	digest := sha256.Sum256(payload)
	pb := &protobundle.Bundle{
		MediaType:            "application/vnd.dev.sigstore.bundle+json;version=0.1",
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest[:]},
			Signature:     sig,
		}},
	}
	b, err := sgbundle.NewBundle(pb)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", malformed("not a valid signature bundle"), err)
	}
	return b, nil
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
