package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/verifier/bundle"
)

// errNoTrustedRoot is the answer to a missing --trusted-root: signgate never
// fetches one (no TUF, no network).
var errNoTrustedRoot = errors.New("no trusted root: pass --trusted-root FILE (signgate never fetches one)")

// verifyBundleOptions are the flags of `signgate verify-bundle`.
type verifyBundleOptions struct {
	Bundle      string // --bundle FILE
	Identity    string // --certificate-identity: exact SAN
	Issuer      string // --certificate-oidc-issuer: exact OIDC issuer
	Key         string // --key FILE
	TrustedRoot string // --trusted-root FILE
	Staging     bool   // --staging: refused, signgate never fetches the staging root
	Artifact    string // FILE or sha256:HEX
}

// newVerifyBundleCmd is `signgate verify-bundle`.
func newVerifyBundleCmd() *cobra.Command {
	var opts verifyBundleOptions
	cmd := &cobra.Command{
		Use:   "verify-bundle FILE_OR_sha256:DIGEST --bundle FILE (--certificate-identity ID --certificate-oidc-issuer URL | --key FILE) --trusted-root FILE",
		Short: "Verify a Sigstore bundle over an artifact, keyless or with a key, offline",
		Long: `Verifies a Sigstore bundle (bundle.sigstore.json, as written by cosign
sign-blob --bundle) as a signature over the artifact FILE, or over the
artifact with the given SHA-256 digest (sha256:HEX), against the trusted root
(trusted_root.json) given with --trusted-root. Nothing is fetched: without
--trusted-root the command fails.

Keyless (--certificate-identity and --certificate-oidc-issuer, both matched
exactly): the certificate must chain to a Fulcio CA of the trusted root and
be valid at a signing time from a verified transparency log entry or RFC 3161
timestamp of the trusted root; at least one log entry is required, SCTs when
the trusted root has CT logs. With --key: the key must verify the signature;
no timestamp or log entry is required (entries present are verified); a
bundle with a certificate verifies with --key only if the certificate holds
that key, and the certificate is then checked as for keyless.

Exit codes: 0 verified; 1 not verified; 2 usage, configuration or input error.`,
		Example: `  signgate verify-bundle --bundle a.txt.sigstore.json --trusted-root trusted_root.json \
    --certificate-identity https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com a.txt
  signgate verify-bundle --bundle a.sigstore.json --key cosign.pub --trusted-root trusted_root.json sha256:2cf24d...`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("want exactly one FILE or sha256:DIGEST, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Artifact = args[0]
			if err := opts.validate(); err != nil {
				return err
			}
			code, err := runVerifyBundle(opts, cmd.OutOrStdout())
			if err != nil {
				return exitWith(code, oneLine(err))
			}
			return exitCode(code)
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("bundle", "json")
	cmd.MarkFlagFilename("key", "pub", "pem")
	cmd.MarkFlagFilename("trusted-root", "json")
	return cmd
}

func (o *verifyBundleOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Bundle, "bundle", "", "Sigstore bundle `FILE` (JSON)")
	fs.StringVar(&o.Identity, "certificate-identity", "", "keyless: the signer `ID`, the certificate's subject alternative name, matched exactly")
	fs.StringVar(&o.Issuer, "certificate-oidc-issuer", "", "keyless: the OIDC issuer `URL` in the certificate, matched exactly")
	fs.StringVar(&o.Key, "key", "", "verify with this public key `FILE` (PEM) instead of an identity")
	fs.StringVar(&o.TrustedRoot, "trusted-root", "", "Sigstore trusted root `FILE` (trusted_root.json); required, never fetched")
	fs.BoolVar(&o.Staging, "staging", false, "the Sigstore staging instance: refused (exit 2), signgate never fetches a trusted root; pass --trusted-root with the staging root instead")
}

func (o *verifyBundleOptions) validate() error {
	keyless := o.Identity != "" || o.Issuer != ""
	switch {
	case o.Bundle == "":
		return errors.New("no --bundle given: pass the Sigstore bundle FILE")
	case o.Key != "" && keyless:
		return errors.New("--key and --certificate-identity/--certificate-oidc-issuer exclude each other")
	case o.Key == "" && !keyless:
		return errors.New("no signer given: pass --certificate-identity and --certificate-oidc-issuer, or --key")
	case o.Key == "" && (o.Identity == "" || o.Issuer == ""):
		return errors.New("keyless verification needs both --certificate-identity and --certificate-oidc-issuer")
	}
	return nil
}

// parseArtifact reads FILE, or decodes sha256:HEX.
func parseArtifact(s string) (bundle.Artifact, error) {
	if hexDigest, ok := strings.CutPrefix(s, "sha256:"); ok {
		d, err := hex.DecodeString(hexDigest)
		if err != nil || len(d) != 32 {
			return bundle.Artifact{}, fmt.Errorf("artifact %q: want sha256: and 64 hex digits", s)
		}
		return bundle.Artifact{SHA256: d}, nil
	}
	data, err := os.ReadFile(s)
	if err != nil {
		return bundle.Artifact{}, fmt.Errorf("read artifact: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return bundle.Artifact{Data: data}, nil
}

// runVerifyBundle loads the inputs, verifies and prints; the error explains
// a non-zero exit code.
func runVerifyBundle(opts verifyBundleOptions, stdout io.Writer) (int, error) {
	if opts.TrustedRoot == "" || opts.Staging {
		return exitUsage, errNoTrustedRoot
	}
	trData, err := os.ReadFile(opts.TrustedRoot)
	if err != nil {
		return exitUsage, fmt.Errorf("read trusted root: %w", err)
	}
	tr, err := bundle.ParseTrustedRoot(trData)
	if err != nil {
		return exitUsage, fmt.Errorf("%s: %w", opts.TrustedRoot, err)
	}
	var policy bundle.Policy
	if opts.Key != "" {
		kData, err := os.ReadFile(opts.Key)
		if err != nil {
			return exitUsage, fmt.Errorf("read key: %w", err)
		}
		if policy.Key, err = authority.ParsePublicKey(kData); err != nil {
			return exitUsage, fmt.Errorf("key %s: %w (want a PEM public key such as cosign.pub)", opts.Key, err)
		}
	} else {
		policy.Identity = &bundle.Identity{SAN: opts.Identity, Issuer: opts.Issuer}
	}
	art, err := parseArtifact(opts.Artifact)
	if err != nil {
		return exitUsage, err
	}
	bData, err := os.ReadFile(opts.Bundle)
	if err != nil {
		return exitUsage, fmt.Errorf("read bundle: %w", err)
	}
	// A bundle that does not parse or fails sigstore-go's shape checks is
	// rejected like one that fails verification.
	b, err := bundle.Parse(bData)
	if err != nil {
		return exitDenied, fmt.Errorf("not verified: %s: %w", opts.Bundle, err)
	}
	res, err := bundle.Verify(b, art, tr, policy)
	if err != nil {
		if errors.Is(err, bundle.ErrNotVerified) {
			return exitDenied, err
		}
		return exitUsage, err
	}
	if res.Keyed {
		fmt.Fprintf(stdout, "verified: %s signed with the key %s\n", opts.Artifact, opts.Key)
	} else {
		fmt.Fprintf(stdout, "verified: %s signed by %s (issuer %s)\n", opts.Artifact, res.SAN, res.Issuer)
	}
	return exitOK, nil
}

// oneLine folds an error whose text spans lines (sigstore-go's inclusion
// proof errors print both roots on lines of their own) into one line.
func oneLine(err error) error {
	msg := err.Error()
	if !strings.ContainsAny(msg, "\r\n") {
		return err
	}
	return errors.New(strings.Join(strings.Fields(msg), " "))
}
