package main

import (
	"context"
	"fmt"
	"io"
)

// checkCmd is replaced by the real command as it lands.
func checkCmd(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "signgate check: not built yet")
	return exitUsage
}
