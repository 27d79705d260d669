package main

import (
	"context"
	"fmt"
	"io"
)

// serveCmd is replaced by the real command as it lands.
func serveCmd(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "signgate serve: not built yet")
	return exitUsage
}
