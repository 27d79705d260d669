package main

import (
	"context"
	"fmt"
	"io"
)

// verifyCmd is replaced by the real command as it lands.
func verifyCmd(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "signgate verify: not built yet")
	return exitUsage
}
