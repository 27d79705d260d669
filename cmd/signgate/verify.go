package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/signgate/signgate/verifier"
)

// verifyOptions are the flags of `signgate verify`.
type verifyOptions struct {
	Image     string
	Keys      []string      // --key FILE, repeatable; each file is one authority named after its path
	Threshold int           // --threshold; default 1
	Insecure  []string      // --insecure-registry HOST[:PORT]: plain HTTP, and allowed on loopback
	Allow     []string      // --allow-host HOST[:PORT]: allowed although loopback/link-local
	Timeout   time.Duration // --timeout for the whole command
}

// repeated is a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func parseVerifyFlags(args []string, stderr io.Writer) (verifyOptions, error) {
	fs := flag.NewFlagSet("signgate verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts                  verifyOptions
		keys, insecure, allow repeated
	)
	fs.Var(&keys, "key", "cosign public key `FILE` (PEM); repeatable, each key is one authority")
	fs.IntVar(&opts.Threshold, "threshold", 1, "how many distinct keys must have signed the image")
	fs.Var(&insecure, "insecure-registry", "`HOST[:PORT]` reached over plain HTTP (and allowed on loopback); repeatable")
	fs.Var(&allow, "allow-host", "`HOST[:PORT]` allowed although it is loopback or link-local; repeatable")
	fs.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "give up (exit 3) after this long")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: signgate verify IMAGE --key FILE [--key FILE...] [flags]

Resolves IMAGE to its digest and verifies its cosign signatures (the classic
.sig tag and the bundle format) against the given public keys. Prints the
pinned reference and the keys that verified.
Exit 0: verified; 1: not verified; 2: usage or input error; 3: undecided
(registry trouble, retry).

flags:
`)
		fs.PrintDefaults()
	}
	// Flags may come before or after IMAGE.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return opts, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	opts.Keys, opts.Insecure, opts.Allow = keys, insecure, allow
	switch {
	case len(positional) != 1:
		return opts, fmt.Errorf("want exactly one IMAGE, got %d", len(positional))
	case len(opts.Keys) == 0:
		return opts, errors.New("no --key given: pass the cosign public key (cosign.pub) the image must be signed with")
	case opts.Threshold < 1 || opts.Threshold > len(opts.Keys):
		return opts, fmt.Errorf("--threshold %d: must be between 1 and the number of --key flags (%d)", opts.Threshold, len(opts.Keys))
	case opts.Timeout <= 0:
		return opts, errors.New("--timeout must be positive")
	}
	opts.Image = positional[0]
	return opts, nil
}

// loadAuthorities reads one authority per key file.
func loadAuthorities(paths []string, threshold int) (verifier.AuthoritySet, error) {
	var as []verifier.Authority
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return verifier.AuthoritySet{}, fmt.Errorf("read key: %w", err)
		}
		key, err := verifier.ParsePublicKey(data)
		if err != nil {
			return verifier.AuthoritySet{}, fmt.Errorf("key %s: %w (want a PEM public key such as cosign.pub)", p, err)
		}
		as = append(as, verifier.Authority{Name: p, Key: key})
	}
	set, err := verifier.NewAuthoritySet(threshold, as...)
	if err != nil {
		return set, fmt.Errorf("--key and --threshold: %w", err)
	}
	return set, nil
}

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseVerifyFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "signgate verify: %v\nRun 'signgate verify -h' for usage.\n", err)
		return exitUsage
	}
	code, err := runVerify(ctx, opts, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "signgate verify: %v\n", err)
	}
	return code
}

// runVerify resolves, verifies and prints; the error explains a non-zero
// exit code.
func runVerify(ctx context.Context, opts verifyOptions, stdout io.Writer) (int, error) {
	ref, err := verifier.ParseReference(opts.Image)
	if err != nil {
		return exitUsage, err
	}
	set, err := loadAuthorities(opts.Keys, opts.Threshold)
	if err != nil {
		return exitUsage, err
	}
	v, err := verifier.New(verifier.Options{
		Timeout:            opts.Timeout,
		InsecureRegistries: opts.Insecure,
		// Naming a registry as insecure on the command line is an explicit
		// choice of that host, so it may also be on loopback.
		AllowedHosts: append(append([]string(nil), opts.Allow...), opts.Insecure...),
		CacheSize:    -1,
		TagTTL:       -1,
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
		return verifyFailure(ref.Context().RegistryStr(), err, fmt.Sprintf("sign it with `cosign sign --key cosign.key %s`, or pass the --key it was signed with", d))
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
