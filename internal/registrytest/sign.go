package registrytest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	intotov1 "github.com/in-toto/attestation/go/v1"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
)

// Layout is where a signature is stored.
type Layout int

const (
	// Classic is cosign's sha256-<hex>.sig tag holding simple-signing
	// payloads (`cosign sign --key`).
	Classic Layout = iota
	// Bundle is a sigstore bundle (DSSE in-toto statement with cosign's
	// sign predicate) attached as an OCI referrer, as written by
	// `cosign sign --key --new-bundle-format --tlog-upload=false`. Without
	// a referrers API it lands in the fallback tag sha256-<hex>.
	Bundle
)

func (l Layout) String() string {
	if l == Bundle {
		return "bundle"
	}
	return "classic"
}

// Signer is a cosign key pair.
type Signer struct {
	// Public is the public key; PublicPEM its PKIX PEM encoding (what
	// `cosign generate-key-pair` writes to cosign.pub).
	Public    crypto.PublicKey
	PublicPEM []byte

	sv signature.SignerVerifier
}

// NewSigner generates an ECDSA P-256 key pair, cosign's default.
func NewSigner(t testing.TB) *Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("registrytest: generate key: %v", err)
	}
	return NewSignerFromKey(t, priv)
}

// NewSignerFromKey wraps an existing private key (ECDSA, RSA or Ed25519);
// signatures use SHA-256 where the algorithm takes a hash.
func NewSignerFromKey(t testing.TB, priv crypto.Signer) *Signer {
	t.Helper()
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatalf("registrytest: load signer: %v", err)
	}
	pemBytes, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatalf("registrytest: marshal public key: %v", err)
	}
	return &Signer{Public: priv.Public(), PublicPEM: pemBytes, sv: sv}
}

// WritePublicKey writes PublicPEM to a file in dir and returns its path.
func (s *Signer) WritePublicKey(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "cosign-*.pub")
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(s.PublicPEM); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return filepath.Clean(f.Name())
}

// Sign signs d and stores the signature next to it in layout. d must come
// from this registry (e.g. PushImage). Signatures accumulate: signing twice
// with two keys gives two signatures.
func (r *Registry) Sign(t testing.TB, s *Signer, d name.Digest, layout Layout) {
	t.Helper()
	r.SignClaim(t, s, d, d, layout)
}

// SignClaim stores, next to d, a signature whose payload names claimed
// instead: a valid signature over the wrong image, which a verifier must
// reject for d.
func (r *Registry) SignClaim(t testing.TB, s *Signer, d, claimed name.Digest, layout Layout) {
	t.Helper()
	var err error
	if layout == Bundle {
		err = r.signBundle(s, d, claimed)
	} else {
		err = r.signClassic(s, d, claimed, nil)
	}
	if err != nil {
		t.Fatalf("registrytest: sign %s (%s): %v", d, layout, err)
	}
}

// SignAnnotated is Sign in the Classic layout with annotations added to
// the signature layer, e.g. a malformed certificate
// (dev.sigstore.cosign/certificate) next to a valid signature, as a
// hostile or buggy signer could push.
func (r *Registry) SignAnnotated(t testing.TB, s *Signer, d name.Digest, annotations map[string]string) {
	t.Helper()
	if err := r.signClassic(s, d, d, annotations); err != nil {
		t.Fatalf("registrytest: sign %s (annotated): %v", d, err)
	}
}

func (r *Registry) ociOptions() ociremote.Option {
	return ociremote.WithRemoteOptions(r.RemoteOptions()...)
}

// signClassic mirrors cosign's signDigest: simple-signing payload, base64
// signature, appended to the sha256-<hex>.sig image; annotations (may be
// nil) are added to the layer as they are.
func (r *Registry) signClassic(s *Signer, d, claimed name.Digest, annotations map[string]string) error {
	payload, err := (&sigpayload.Cosign{Image: claimed}).MarshalJSON()
	if err != nil {
		return err
	}
	raw, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return err
	}
	return r.attachClassic(d, payload, base64.StdEncoding.EncodeToString(raw), annotations)
}

// attachClassic appends a signature layer (payload, base64 signature,
// annotations as they are; may be nil) to d's sha256-<hex>.sig image.
func (r *Registry) attachClassic(d name.Digest, payload []byte, b64sig string, annotations map[string]string) error {
	var opts []static.Option
	if annotations != nil {
		opts = append(opts, static.WithAnnotations(maps.Clone(annotations)))
	}
	sig, err := static.NewSignature(payload, b64sig, opts...)
	if err != nil {
		return err
	}
	se, err := ociremote.SignedEntity(d, r.ociOptions())
	if err != nil {
		return err
	}
	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		return err
	}
	return ociremote.WriteSignatures(d.Repository, se, r.ociOptions())
}

// signBundle mirrors cosign's signDigestBundle for a key without a
// transparency log: in-toto statement about claimed, DSSE-signed, wrapped
// in a v0.3 bundle and written as a referrer of d.
func (r *Registry) signBundle(s *Signer, d, claimed name.Digest) error {
	alg, hexDigest, _ := strings.Cut(claimed.DigestStr(), ":")
	statement := &intotov1.Statement{
		Type:          intotov1.StatementTypeUri,
		Subject:       []*intotov1.ResourceDescriptor{{Digest: map[string]string{alg: hexDigest}}},
		PredicateType: types.CosignSignPredicateType,
	}
	payload, err := protojson.Marshal(statement)
	if err != nil {
		return err
	}
	envelope, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		return err
	}
	b, err := cbundle.MakeNewBundle(s.Public, nil, payload, envelope, s.PublicPEM, nil)
	if err != nil {
		return err
	}
	return ociremote.WriteAttestationNewBundleFormat(d, b, types.CosignSignPredicateType, r.ociOptions())
}

// AttachBundle stores bundleJSON (a sigstore bundle, e.g. a keyless one
// built by the test) as a referrer of d, the way Sign(..., Bundle)
// attaches key-signed bundles: `cosign sign --new-bundle-format`'s
// layout. The bundle is stored as it is, not checked.
func (r *Registry) AttachBundle(t testing.TB, d name.Digest, bundleJSON []byte) {
	t.Helper()
	if err := ociremote.WriteAttestationNewBundleFormat(d, bundleJSON, types.CosignSignPredicateType, r.ociOptions()); err != nil {
		t.Fatalf("registrytest: attach bundle to %s: %v", d, err)
	}
}

// Attestation is what Attest writes: an in-toto statement about Subject
// (default: the attested digest) of PredicateType with Predicate
// (marshalled as JSON), DSSE-signed.
type Attestation struct {
	PredicateType string
	Predicate     any
	Subject       name.Digest // zero: the digest attested
	// AnnotatedType is the layer's predicateType annotation, which is
	// not signed; "" means PredicateType, as cosign writes it.
	AnnotatedType string
	// Pad adds a field of this many bytes to the statement (an oversized
	// attestation).
	Pad int
}

// Attest stores an attestation next to d the way `cosign attest --key
// --tlog-upload=false` does: a DSSE envelope (payload type
// application/vnd.in-toto+json) signed with s, appended as a layer of
// media type application/vnd.dsse.envelope.v1+json with a predicateType
// annotation to d's sha256-<hex>.att image. Attestations accumulate.
func (r *Registry) Attest(t testing.TB, s *Signer, d name.Digest, a Attestation) {
	t.Helper()
	payload := a.statement(t, d)
	envelope, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
	r.attachAttestation(t, d, a, envelope, nil)
}

// AttestBundle stores an attestation as a referrer of d the way `cosign
// attest --key --new-bundle-format --tlog-upload=false` does: a's in-toto
// statement DSSE-signed with s, in a v0.3 bundle with the public key
// hint, attached with a.AnnotatedType (default a.PredicateType) as the
// referrer's dev.sigstore.bundle.predicateType annotation, which is not
// signed.
func (r *Registry) AttestBundle(t testing.TB, s *Signer, d name.Digest, a Attestation) {
	t.Helper()
	payload := a.statement(t, d)
	envelope, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
	b, err := cbundle.MakeNewBundle(s.Public, nil, payload, envelope, s.PublicPEM, nil)
	if err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
	r.attachAttestationBundle(t, d, a, b)
}

// attachAttestationBundle attaches bundleJSON as a referrer of d with
// a's annotated predicate type.
func (r *Registry) attachAttestationBundle(t testing.TB, d name.Digest, a Attestation, bundleJSON []byte) {
	t.Helper()
	annotated := a.AnnotatedType
	if annotated == "" {
		annotated = a.PredicateType
	}
	if err := ociremote.WriteAttestationNewBundleFormat(d, bundleJSON, annotated, r.ociOptions()); err != nil {
		t.Fatalf("registrytest: attach attestation bundle to %s: %v", d, err)
	}
}

// statement is a's in-toto statement about d (or a.Subject), as JSON.
func (a Attestation) statement(t testing.TB, d name.Digest) []byte {
	t.Helper()
	subject := a.Subject
	if subject.DigestStr() == "" {
		subject = d
	}
	alg, hexDigest, _ := strings.Cut(subject.DigestStr(), ":")
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": a.PredicateType,
		"subject":       []any{map[string]any{"name": subject.Context().Name(), "digest": map[string]string{alg: hexDigest}}},
		"predicate":     a.Predicate,
	}
	if a.Pad > 0 {
		st["pad"] = strings.Repeat("x", a.Pad)
	}
	payload, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
	return payload
}

// attachAttestation appends envelope as a DSSE layer of d's
// sha256-<hex>.att image, with the predicateType annotation and extra
// annotations (may be nil).
func (r *Registry) attachAttestation(t testing.TB, d name.Digest, a Attestation, envelope []byte, extra map[string]string) {
	t.Helper()
	annotated := a.AnnotatedType
	if annotated == "" {
		annotated = a.PredicateType
	}
	ann := map[string]string{"predicateType": annotated}
	maps.Copy(ann, extra)
	att, err := static.NewAttestation(envelope,
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(ann))
	if err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
	se, err := ociremote.SignedEntity(d, r.ociOptions())
	if err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
	se, err = mutate.AttachAttestationToEntity(se, att)
	if err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
	if err := ociremote.WriteAttestations(d.Repository, se, r.ociOptions()); err != nil {
		t.Fatalf("registrytest: attest %s: %v", d, err)
	}
}
