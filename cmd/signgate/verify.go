package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/verifier"
)

// verifyOptions are the flags of `signgate verify`.
type verifyOptions struct {
	Image     string
	Keys      []string      // --key FILE, repeatable; each file is one authority named after its path
	Keyless   keylessFlags  // --certificate-identity[-regexp], --certificate-oidc-issuer[-regexp], --trusted-root
	Threshold int           // --threshold; default 1
	Insecure  []string      // --insecure-registry HOST[:PORT]: plain HTTP
	Allow     []string      // --allow-host HOST[:PORT]: allowed although loopback/link-local
	Timeout   time.Duration // --timeout for the whole command
	// --attestation TYPE, each with the --condition and --message that
	// follow it; compiled by validate into Attestations.
	AttestFlags  []attestFlag
	Attestations []*attestation.Requirement
}

// attestFlag is one --attestation and the --condition and --message given
// after it (before the next --attestation).
type attestFlag struct {
	Type, Condition, Message string
}

// attestValue is --attestation, --condition or --message: each appends to
// or completes the list in command-line order, so a --condition belongs to
// the --attestation before it.
type attestValue struct {
	list  *[]attestFlag
	field string // "attestation", "condition" or "message"
}

func (v attestValue) String() string { return "" }
func (v attestValue) Type() string   { return v.field }

func (v attestValue) Set(s string) error {
	l := *v.list
	if v.field == "attestation" {
		*v.list = append(l, attestFlag{Type: s})
		return nil
	}
	if len(l) == 0 {
		return fmt.Errorf("--%s applies to the --attestation before it: give --attestation TYPE first", v.field)
	}
	last := &l[len(l)-1]
	p := &last.Condition
	if v.field == "message" {
		p = &last.Message
	}
	if *p != "" {
		return fmt.Errorf("--attestation %s has two --%s: give one per --attestation", last.Type, v.field)
	}
	*p = s
	return nil
}

// newVerifyCmd is `signgate verify`.
func newVerifyCmd() *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify IMAGE (--key FILE... | --certificate-identity[-regexp] ID --certificate-oidc-issuer[-regexp] URL --trusted-root FILE) [flags]",
		Short: "Resolve an image to its digest and verify its cosign signatures",
		Long: `Resolves IMAGE to its digest and verifies its cosign signatures (the classic
.sig tag and the bundle format) against the given public keys, or keyless:
a bundle whose Fulcio certificate names the given identity and issuer,
chains to the trusted root given with --trusted-root (never fetched) and is
logged or timestamped by it. Keys and the keyless identity are authorities
alike; --threshold counts distinct ones. Prints the pinned reference and
the authorities that verified. Flags may come before or after IMAGE.

--attestation TYPE also requires of every authority an in-toto attestation
of TYPE (a predicate type URI or a cosign short name: slsaprovenance1,
spdxjson, vuln, ...) that it signed about the image; the --condition and
--message after an --attestation (before the next one) belong to it: a CEL
condition the attestation must satisfy, and a CEL string reported when it
does not (see docs/policies.md, Attestations). An authority counts only
when its signature verifies and every attestation is satisfied.

Exit codes: 0 verified; 1 not verified; 2 usage or input error; 3 undecided
(registry trouble, retry).`,
		Example: `  signgate verify ghcr.io/example/app:v1 --key cosign.pub
  signgate verify --key alice.pub --key bob.pub --threshold 2 registry.example/app@sha256:...
  signgate verify ghcr.io/acme/app:v1 --trusted-root trusted_root.json \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com \
    --certificate-identity-regexp '^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*$'
  signgate verify ghcr.io/acme/app:v1 --key cosign.pub \
    --attestation slsaprovenance1 --condition 'predicate.runDetails.builder.id.startsWith("https://github.com/acme/")' \
    --attestation spdxjson
  signgate verify 127.0.0.1:5000/team-a/web:1.0 --key cosign.pub --insecure-registry 127.0.0.1:5000 --allow-host 127.0.0.1:5000`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("want exactly one IMAGE, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Image = args[0]
			if err := opts.validate(); err != nil {
				return err
			}
			code, err := runVerify(cmd.Context(), opts, cmd.OutOrStdout())
			if err != nil {
				return exitWith(code, err)
			}
			return exitCode(code)
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("key", "pub", "pem")
	return cmd
}

func (o *verifyOptions) addFlags(fs *pflag.FlagSet) {
	listFlag(fs, &o.Keys, paths, "key", "", "cosign public key `FILE` (PEM); repeatable, each key is one authority")
	o.Keyless.addFlags(fs)
	fs.Var(attestValue{&o.AttestFlags, "attestation"}, "attestation", "require of every authority a signed attestation of predicate `TYPE` (URI or cosign short name) about the image; repeatable, each one requirement named TYPE")
	fs.Var(attestValue{&o.AttestFlags, "condition"}, "condition", "`CEL` condition the attestation of the --attestation before it must satisfy (default: its presence is enough)")
	fs.Var(attestValue{&o.AttestFlags, "message"}, "message", "`CEL` string reported when the condition of the --attestation before it is false")
	fs.IntVar(&o.Threshold, "threshold", 1, "`N` of the authorities (each --key, the keyless identity) must have signed the image; distinct keys and identities count once")
	registryFlags(fs, &o.Insecure, &o.Allow)
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "give up (exit 3) after `DURATION`")
}

func (o *verifyOptions) validate() error {
	o.Insecure, o.Allow = cleanList(o.Insecure), cleanList(o.Allow)
	n := len(o.Keys)
	if o.Keyless.given() {
		n++
	}
	switch {
	case n == 0:
		return errors.New("no authority given: pass --key with the cosign public key (cosign.pub) the image must be signed with, or the keyless signer with --certificate-identity[-regexp], --certificate-oidc-issuer[-regexp] and --trusted-root")
	case o.Threshold < 1 || o.Threshold > n:
		return fmt.Errorf("--threshold %d: must be between 1 and the number of authorities (%d: each --key, and the keyless identity)", o.Threshold, n)
	case o.Timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	o.Attestations = nil
	seen := map[string]bool{}
	for _, f := range o.AttestFlags {
		if seen[f.Type] {
			return fmt.Errorf("--attestation %s given twice: give its condition once (conditions can be joined with &&)", f.Type)
		}
		seen[f.Type] = true
		if f.Message != "" && f.Condition == "" {
			return fmt.Errorf("--attestation %s: --message needs a --condition", f.Type)
		}
		r, err := attestation.Compile(f.Type, f.Type, f.Condition, f.Message)
		if err != nil {
			// Compile's errors start with "attestation TYPE: ".
			return fmt.Errorf("--attestation %s: %s", f.Type, strings.TrimPrefix(err.Error(), "attestation "+f.Type+": "))
		}
		o.Attestations = append(o.Attestations, r)
	}
	return nil
}

// loadAuthorities reads one authority per key file, and the keyless one;
// each must also show every one of attestations.
func loadAuthorities(paths []string, keyless keylessFlags, threshold int, attestations []*attestation.Requirement) (verifier.AuthoritySet, error) {
	var as []verifier.Authority
	if keyless.given() {
		a, err := keyless.authority()
		if err != nil {
			return verifier.AuthoritySet{}, err
		}
		a.Attestations = attestations
		as = append(as, a)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return verifier.AuthoritySet{}, fmt.Errorf("read key: %w", err)
		}
		key, err := verifier.ParsePublicKey(data)
		if err != nil {
			return verifier.AuthoritySet{}, fmt.Errorf("key %s: %w (want a PEM public key such as cosign.pub)", p, err)
		}
		as = append(as, verifier.Authority{Name: p, Key: key, Attestations: attestations})
	}
	set, err := verifier.NewAuthoritySet(threshold, as...)
	if err != nil {
		return set, fmt.Errorf("authorities and --threshold: %w", err)
	}
	return set, nil
}

// runVerify resolves, verifies and prints; the error explains a non-zero
// exit code.
func runVerify(ctx context.Context, opts verifyOptions, stdout io.Writer) (int, error) {
	ref, err := verifier.ParseReference(opts.Image)
	if err != nil {
		return exitUsage, err
	}
	set, err := loadAuthorities(opts.Keys, opts.Keyless, opts.Threshold, opts.Attestations)
	if err != nil {
		return exitUsage, err
	}
	v, err := verifier.New(verifier.Options{
		Timeout:            opts.Timeout,
		InsecureRegistries: opts.Insecure,
		AllowedHosts:       opts.Allow,
		CacheSize:          -1,
		TagTTL:             -1,
	})
	if err != nil {
		return exitUsage, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	d, err := v.Resolve(ctx, ref)
	if err != nil {
		return verifyFailure(ref.Context().RegistryStr(), err, "check the image name and that you can pull it; for a registry on loopback use --allow-host, for plain HTTP --insecure-registry")
	}
	res, err := v.Verify(ctx, d, set)
	if err != nil {
		hint := fmt.Sprintf("sign it with `cosign sign --key cosign.key %s`, or pass the --key it was signed with", d)
		if opts.Keyless.given() {
			hint = fmt.Sprintf("sign it keyless from the trusted workflow (`cosign sign --new-bundle-format %s` in CI), or pass the identity and issuer it was signed with", d)
		}
		var nv *verifier.NotVerifiedError
		switch {
		case errors.As(err, &nv) && nv.Attestation:
			// Signed: what is missing is an attestation, or its condition.
			hint = fmt.Sprintf("attest it with the same signer (`cosign attest --type TYPE --predicate FILE %s`) so that every --attestation is satisfied, or fix the --condition", d)
		case len(opts.Attestations) > 0:
			hint += "; each authority must also have attested it (`cosign attest --type TYPE --predicate FILE`) with every --attestation satisfied"
		}
		return verifyFailure(ref.Context().RegistryStr(), err, hint)
	}
	fmt.Fprintln(stdout, pinned(opts.Image, ref, d))
	fmt.Fprintf(stdout, "verified by: %s\n", strings.Join(res.Verified, ", "))
	return exitOK, nil
}

// failure maps a verifier error to an exit code and a message that says
// what to do.
func failure(err error, hint string) (int, error) {
	if verifier.IsUndecided(err) {
		return exitUndecided, fmt.Errorf("%w\nNothing was decided: retry, or check that the registry is reachable", err)
	}
	return exitDenied, fmt.Errorf("NOT VERIFIED: %w\nTo fix: %s", err, hint)
}

// pinned is the reference to deploy: repo:tag@digest when the input named
// a tag, repo@digest otherwise.
func pinned(input string, ref name.Reference, d name.Digest) string {
	if tag, ok := ref.(name.Tag); ok {
		return tag.String() + "@" + d.DigestStr()
	}
	// tag+digest input: ParseReference kept only the digest.
	if before, _, ok := strings.Cut(input, "@"); ok {
		if t, err := verifier.ParseReference(before); err == nil && hasExplicitTag(before) {
			return t.String() + "@" + d.DigestStr()
		}
	}
	return d.String()
}

// hasExplicitTag reports whether s (no digest) names a tag rather than
// defaulting to latest.
func hasExplicitTag(s string) bool {
	i := strings.LastIndex(s, ":")
	return i > strings.LastIndex(s, "/")
}
