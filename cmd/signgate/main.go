// Command signgate is the admission gate for signed images: `serve` runs the
// mutating and validating webhooks, `check` evaluates manifests offline the
// way the webhook would, `lint` checks policy files, `verify` resolves and
// verifies one image.
//
// This package is wiring only: commands and flags (cli.go), files, signals
// and exit codes. The decisions live in admission, policy and verifier.
package main

import (
	"context"
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
