// Command base-image builds the gate's container base image and pushes it to
// a registry: an empty image holding only the CA certificates of the build
// machine (Debian's ca-certificates bundle), /etc/passwd and /etc/group with
// the "nonroot" user 65532, a home directory and /tmp. The image config runs
// as 65532:65532. It prints the pushed image by digest on stdout.
//
// It exists because no base image can be pulled from the internet where the
// gate is built; `make image` passes its output to ko as KO_DEFAULTBASEIMAGE.
// The layer is deterministic (fixed timestamps, sorted entries), so the same
// CA bundle always yields the same digest.
//
//	go run ./e2e/cmd/base-image -ref 127.0.0.1:5055/signgate-base:nonroot
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// options are the command-line settings.
type options struct {
	ref      string // where to push, e.g. registry/repo:tag
	caFile   string // PEM bundle copied to /etc/ssl/certs/ca-certificates.crt
	arch     string // image architecture (GOARCH spelling)
	insecure bool   // registry speaks plain HTTP
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "base-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(opts.caFile)
	if err != nil {
		return fmt.Errorf("read CA bundle: %w", err)
	}
	img, err := Build(ca, opts.arch)
	if err != nil {
		return err
	}
	digest, err := push(ctx, opts, img)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, digest)
	return err
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("base-image", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.ref, "ref", "", "image reference to push to (required), e.g. 127.0.0.1:5055/signgate-base:nonroot")
	fs.StringVar(&o.caFile, "ca-file", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle to ship (Debian's ca-certificates)")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "image architecture")
	fs.BoolVar(&o.insecure, "insecure", false, "push over plain HTTP")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.ref == "" || fs.NArg() != 0 {
		return o, errors.New("usage: base-image -ref REGISTRY/REPO[:TAG] [-ca-file FILE] [-arch ARCH] [-insecure]")
	}
	return o, nil
}

// push writes img to o.ref and returns the pushed image's digest reference.
func push(ctx context.Context, o options, img v1.Image) (name.Digest, error) {
	var nameOpts []name.Option
	if o.insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.ParseReference(o.ref, nameOpts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("parse %q: %w", o.ref, err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("digest of %s: %w", ref, err)
	}
	return ref.Context().Digest(h.String()), nil
}
