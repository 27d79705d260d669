package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// logRecords parses JSON log lines into records.
func logRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(out) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON record: %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// captureStderr runs f with os.Stderr, where klog writes in its own
// format, redirected, and returns what was written there.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	old := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = old }()
	f()
	os.Stderr = old
	w.Close()
	out := <-done
	r.Close()
	return string(out)
}

// TestKlogRoutedToServeLogger: after serve's logging setup, klog's lines
// (client-go's) and slog's and the log package's default loggers' are
// records of serve's JSON logger, at its level, and nothing is written to
// stderr in klog's format; klog's V(4) lines appear only with debug.
func TestKlogRoutedToServeLogger(t *testing.T) {
	for _, tc := range []struct {
		level     string
		wantMsgs  []string
		wantLevel map[string]string
		notMsgs   []string
	}{
		{
			level:     "info",
			wantMsgs:  []string{"klog info line", "klog error line", "klogs error line", "slog default line", "log package line"},
			wantLevel: map[string]string{"klog info line": "INFO", "klog error line": "ERROR", "klogs error line": "ERROR"},
			notMsgs:   []string{"klog v4 line", "klog contextual v4 line", "slog default debug line"},
		},
		{
			level:     "debug",
			wantMsgs:  []string{"klog info line", "klog v4 line", "klog contextual v4 line", "slog default debug line"},
			wantLevel: map[string]string{"klog v4 line": "DEBUG", "klog contextual v4 line": "DEBUG"},
			notMsgs:   []string{"klog v5 line"},
		},
		{
			level:    "error",
			wantMsgs: []string{"klog error line", "klogs error line"},
			notMsgs:  []string{"klog info line", "slog default line", "log package line"},
		},
	} {
		t.Run(tc.level, func(t *testing.T) {
			var buf syncBuffer
			level := logLevels[tc.level]
			log := newLogger("json", level, &buf)
			stderr := captureStderr(t, func() {
				restore := routeLibraryLogs(log, level)
				defer restore()
				klog.Info("klog info line")
				klog.Error("klog error line")
				klog.ErrorS(errors.New("boom"), "klogs error line", "pod", "team-a/p")
				klog.V(4).Info("klog v4 line")
				klog.V(5).Info("klog v5 line")
				klog.Background().V(4).Info("klog contextual v4 line")
				klog.Flush()
				slog.Info("slog default line")
				slog.Debug("slog default debug line")
				stdlog.Print("log package line")
			})
			if strings.Contains(stderr, "klog") {
				t.Errorf("klog wrote to stderr in its own format:\n%s", stderr)
			}
			byMsg := map[string]map[string]any{}
			for _, rec := range logRecords(t, buf.String()) {
				byMsg[rec["msg"].(string)] = rec
			}
			for _, m := range tc.wantMsgs {
				if byMsg[m] == nil {
					t.Errorf("no record %q in the log:\n%s", m, buf.String())
				}
			}
			for m, lvl := range tc.wantLevel {
				if rec := byMsg[m]; rec != nil && rec["level"] != lvl {
					t.Errorf("record %q at level %v, want %s", m, rec["level"], lvl)
				}
			}
			if rec := byMsg["klogs error line"]; rec != nil && (rec["err"] != "boom" || rec["pod"] != "team-a/p") {
				t.Errorf("klog.ErrorS record lacks its error and key/values: %v", rec)
			}
			for _, m := range tc.notMsgs {
				if byMsg[m] != nil {
					t.Errorf("record %q logged at --log-level %s: %v", m, tc.level, byMsg[m])
				}
			}
		})
	}
	// restore put klog back on stderr and slog back on the log package.
	stderr := captureStderr(t, func() {
		klog.Info("klog after restore")
		klog.Flush()
	})
	if !strings.Contains(stderr, "klog after restore") {
		t.Errorf("after restore, klog.Info wrote %q to stderr", stderr)
	}
}

// TestServeLogLevel: --log-level sets the level of serve's logger in both
// formats; the default is info.
func TestServeLogLevel(t *testing.T) {
	var o serveOptions
	o.addFlags(pflag.NewFlagSet("serve", pflag.ContinueOnError))
	if o.LogLevel != "info" {
		t.Errorf("--log-level defaults to %q, want info", o.LogLevel)
	}
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log := newLogger(format, logLevels["warn"], &buf)
		log.Info("info line")
		log.Warn("warn line")
		if out := buf.String(); strings.Contains(out, "info line") || !strings.Contains(out, "warn line") {
			t.Errorf("%s logger at warn wrote:\n%s", format, out)
		}
	}
}
