// Command signgate is the admission gate for signed images: `serve` runs the
// mutating and validating webhooks, `check` evaluates manifests offline the
// way the webhook would, `verify` resolves and verifies one image.
//
// This package is wiring only: flags, files, signals and exit codes. The
// decisions live in admission, policy and verifier.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes shared by every subcommand.
const (
	exitOK        = 0 // admitted / verified / served and stopped cleanly
	exitDenied    = 1 // something was denied or not verified
	exitUsage     = 2 // bad usage, configuration or input
	exitUndecided = 3 // registry trouble: the answer is not known, retry
)

// command is one subcommand: it parses its own args and returns an exit code.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"serve":   serveCmd,
		"check":   checkCmd,
		"verify":  verifyCmd,
		"version": versionCmd,
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return exitUsage
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "signgate: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: signgate <command> [flags]

commands:
  serve    run the mutating and validating admission webhooks
  check    evaluate manifests the way the webhook would (for CI)
  verify   resolve an image to its digest and verify its cosign signatures
  version  print the version

Run 'signgate <command> -h' for the flags of a command.
`)
}
