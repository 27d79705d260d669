package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at link time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func versionCmd(_ context.Context, _ []string, stdout, _ io.Writer) int {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	fmt.Fprintf(stdout, "signgate %s\n", v)
	return exitOK
}
