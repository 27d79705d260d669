package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/verifier"
	"github.com/signgate/signgate/verifier/bundle"
)

// keylessFlags are the keyless signer of `signgate verify`, with cosign's
// flag names.
type keylessFlags struct {
	Identity, IdentityRegExp string // --certificate-identity[-regexp]: the certificate's subject (SAN)
	Issuer, IssuerRegExp     string // --certificate-oidc-issuer[-regexp]
	TrustedRoot              string // --trusted-root FILE: trusted_root.json, never fetched
}

func (k *keylessFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.Identity, "certificate-identity", "", "keyless: the signing certificate's subject `ID`, exactly (a workflow URI, an e-mail)")
	fs.StringVar(&k.IdentityRegExp, "certificate-identity-regexp", "", "keyless: the certificate's subject as an RE2 `REGEXP` matching the whole value")
	fs.StringVar(&k.Issuer, "certificate-oidc-issuer", "", "keyless: the OIDC issuer `URL` of the certificate, exactly")
	fs.StringVar(&k.IssuerRegExp, "certificate-oidc-issuer-regexp", "", "keyless: the OIDC issuer as an RE2 `REGEXP` matching the whole value")
	fs.StringVar(&k.TrustedRoot, "trusted-root", "", "keyless: Sigstore trusted root `FILE` (trusted_root.json) the certificate, log and timestamps must chain to; never fetched")
}

// given reports whether any keyless flag was passed.
func (k keylessFlags) given() bool {
	return k.Identity != "" || k.IdentityRegExp != "" || k.Issuer != "" || k.IssuerRegExp != "" || k.TrustedRoot != ""
}

// authority is the keyless authority of the flags, named "keyless".
func (k keylessFlags) authority() (verifier.Authority, error) {
	id, err := authority.NewIdentity(k.Issuer, k.IssuerRegExp, k.Identity, k.IdentityRegExp)
	if err != nil {
		return verifier.Authority{}, fmt.Errorf("keyless: %w (flags --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp])", err)
	}
	if k.TrustedRoot == "" {
		return verifier.Authority{}, errors.New("keyless: no trusted root: pass --trusted-root FILE (signgate never fetches one)")
	}
	data, err := os.ReadFile(k.TrustedRoot)
	if err != nil {
		return verifier.Authority{}, fmt.Errorf("--trusted-root: %w", err)
	}
	material, err := bundle.ParseTrustedRoot(data)
	if err != nil {
		return verifier.Authority{}, fmt.Errorf("--trusted-root %s: %w", k.TrustedRoot, err)
	}
	sum := sha256.Sum256(data)
	kl, err := authority.NewKeyless(authority.TrustRoot{Name: k.TrustedRoot, Material: material, Digest: hex.EncodeToString(sum[:])}, []authority.Identity{id}, nil)
	if err != nil {
		return verifier.Authority{}, err
	}
	return verifier.Authority{Name: "keyless", Keyless: kl}, nil
}
