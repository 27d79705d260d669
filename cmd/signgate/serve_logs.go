package main

import (
	"flag"
	stdlog "log"
	"log/slog"
	"strconv"

	"k8s.io/klog/v2"
)

// klogDebugVerbosity is klog's -v with --log-level debug (else 0):
// client-go's informer and leader-election details, below its request
// traces (6 and up), which name every URL.
const klogDebugVerbosity = 4

// routeLibraryLogs sends to log what serve runs but does not log through
// log itself, so that every line has serve's format and level: slog's
// default logger (which the log package then writes to too), used by the
// cloud credential providers and for recovered panics, and klog, client-go's
// logger, with its verbosity at klogDebugVerbosity when level is debug,
// else 0 (klog's V(n) lines are records at level -n: V(4) is debug).
//
// klog's logger is not safe to change while anything logs through it, so
// serve calls this before it builds a Kubernetes client. The returned
// func restores the previous settings, for tests.
func routeLibraryLogs(log *slog.Logger, level slog.Level) (restore func()) {
	prevDefault, prevOutput, prevFlags := slog.Default(), stdlog.Writer(), stdlog.Flags()
	slog.SetDefault(log)

	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	prevV := klogFlags.Lookup("v").Value.String()
	v := 0
	if level <= slog.LevelDebug {
		v = klogDebugVerbosity
	}
	_ = klogFlags.Set("v", strconv.Itoa(v))
	klog.SetSlogLogger(log)

	return func() {
		klog.ClearLogger()
		_ = klogFlags.Set("v", prevV)
		// slog.SetDefault back to the log package's own handler leaves
		// the log package writing to log: restore its output too.
		slog.SetDefault(prevDefault)
		stdlog.SetOutput(prevOutput)
		stdlog.SetFlags(prevFlags)
	}
}
