package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// probeRun runs `signgate probe` with args and returns its exit code and
// output.
func probeRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append([]string{"probe"}, args...), &out, &errOut)
	t.Logf("signgate probe %s\nexit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, &out, &errOut)
	return code, out.String(), errOut.String()
}

// probeAnswered is probe's output when both webhooks answer: the mutating
// webhook admits the pinned image without a patch, the validating webhook
// decides it without a registry.
var probeAnswered = regexp.MustCompile(`^mutate: answered \(allowed\) in \d+ms\nvalidate: answered \(denied: [^\n]+\) in \d+ms\n$`)

// writeTLSPair writes c (an ECDSA certificate from testCA.issue) as PEM
// files in dir and returns their paths.
func writeTLSPair(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// writeProbeFile writes content to dir/name and returns the path.
func writeProbeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProbeGate: against a running gate, probe answers from both webhooks
// with the CA of the serving certificate (self-signed here, so the
// certificate is its own CA), and fails with a message about the
// certificate when --ca-file is another CA.
func TestProbeGate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := testOptions(t, dir)
	s, _ := startServer(t, o)
	url := "https://" + s.WebhookAddr().String()

	code, stdout, stderr := probeRun(t, "--url", url, "--ca-file", o.CertFile)
	if code != exitOK || !probeAnswered.MatchString(stdout) || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and both webhooks answered", code, stdout, stderr)
	}
	// The validating webhook decided from its configuration alone: no
	// policy covers the probe's loopback image.
	if !strings.Contains(stdout, `"127.0.0.1:1/signgate-probe@sha256:`) {
		t.Errorf("validate's answer does not name the probe's image: %q", stdout)
	}
	// A trailing slash on --url, as webhook.url may have one.
	if code, stdout, _ := probeRun(t, "--url", url+"/", "--ca-file", o.CertFile, "-n", "team-a"); code != exitOK || !probeAnswered.MatchString(stdout) {
		t.Errorf("--url with a trailing slash: exit %d, stdout %q; want 0", code, stdout)
	}

	other := writeProbeFile(t, dir, "other-ca.crt", newTestCA(t, "other-ca").pem)
	code, stdout, stderr = probeRun(t, "--url", url, "--ca-file", other)
	if code != exitDenied || stdout != "" {
		t.Errorf("wrong CA: exit %d, stdout %q; want 1 and nothing on stdout", code, stdout)
	}
	for _, webhook := range probeWebhooks {
		want := "signgate probe: " + webhook + ": the gate's serving certificate (subject CN=signgate-test) is not signed by a CA in --ca-file " + other
		if !strings.Contains(stderr, want) {
			t.Errorf("wrong CA: stderr %q does not contain %q", stderr, want)
		}
	}
}

// TestProbeClientCA: a gate serving with --client-ca-file refuses a probe
// without a client certificate, saying which flags are missing, and
// answers one with a client certificate from its CA.
func TestProbeClientCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := testOptions(t, dir)
	o.ClientCAFile = filepath.Join(dir, "client-ca.crt")
	ca := newTestCA(t, "client-ca")
	writeCAFile(t, o.ClientCAFile, ca.pem)
	s, _ := startServer(t, o)
	url := "https://" + s.WebhookAddr().String()

	code, stdout, stderr := probeRun(t, "--url", url, "--ca-file", o.CertFile)
	if code != exitDenied || stdout != "" || !strings.Contains(stderr, "requires a client certificate") || !strings.Contains(stderr, "pass --cert-file and --key-file") {
		t.Errorf("no client certificate: exit %d, stdout %q, stderr %q; want 1 and a message asking for --cert-file and --key-file", code, stdout, stderr)
	}

	certFile, keyFile := writeTLSPair(t, dir, "probe", ca.issue(t, "signgate-probe", x509.ExtKeyUsageClientAuth))
	code, stdout, stderr = probeRun(t, "--url", url, "--ca-file", o.CertFile, "--cert-file", certFile, "--key-file", keyFile)
	if code != exitOK || !probeAnswered.MatchString(stdout) || stderr != "" {
		t.Errorf("with a client certificate: exit %d, stdout %q, stderr %q; want 0 and both webhooks answered", code, stdout, stderr)
	}

	otherFile, otherKey := writeTLSPair(t, dir, "other", newTestCA(t, "other-ca").issue(t, "signgate-probe", x509.ExtKeyUsageClientAuth))
	code, _, stderr = probeRun(t, "--url", url, "--ca-file", o.CertFile, "--cert-file", otherFile, "--key-file", otherKey)
	if code != exitDenied || !strings.Contains(stderr, "the gate refused the client certificate --cert-file "+otherFile) {
		t.Errorf("client certificate from another CA: exit %d, stderr %q; want 1 naming --cert-file", code, stderr)
	}
}

// TestProbeBadAnswers: an HTTPS server that is not a working gate fails
// the probe (exit 1) with what is wrong: another uid, an HTTP error, no
// AdmissionReview, no answer within --timeout.
func TestProbeBadAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		args    []string
		want    string
	}{
		{
			name: "other uid",
			handler: func(w http.ResponseWriter, r *http.Request) {
				var review admissionv1.AdmissionReview
				if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil || review.Request.UID == "" {
					http.Error(w, "bad review", http.StatusBadRequest)
					return
				}
				review.Response = &admissionv1.AdmissionResponse{UID: "not-" + review.Request.UID, Allowed: true}
				review.Request = nil
				json.NewEncoder(w).Encode(review)
			},
			want: "is not the request's",
		},
		{
			name: "500",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "upstream broke", http.StatusInternalServerError)
			},
			want: "HTTP 500 Internal Server Error, want 200 with an AdmissionReview (upstream broke)",
		},
		{
			name:    "not a review",
			handler: func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>hello</html>") },
			want:    "the answer is not an AdmissionReview",
		},
		{
			name: "no answer",
			// Until the probe gives up and closes the connection: the
			// server notices only once the body has been read.
			handler: func(_ http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
			},
			args: []string{"--timeout", "200ms"},
			want: "within --timeout 200ms",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewTLSServer(tc.handler)
			t.Cleanup(srv.Close)
			t.Cleanup(srv.CloseClientConnections) // first: Close waits for the handlers
			ca := writeProbeFile(t, t.TempDir(), "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
			code, stdout, stderr := probeRun(t, append([]string{"--url", srv.URL, "--ca-file", ca}, tc.args...)...)
			if code != exitDenied || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing on stdout", code, stdout)
			}
			for _, webhook := range probeWebhooks {
				if want := "signgate probe: " + webhook + ": "; !strings.Contains(stderr, want) || !strings.Contains(stderr, tc.want) {
					t.Errorf("stderr %q does not contain %q and %q", stderr, want, tc.want)
				}
			}
		})
	}
}

// TestProbeUsage: missing or bad flags and unreadable files exit 2
// without calling anything.
func TestProbeUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := writeProbeFile(t, dir, "not-pem.crt", "just text\n")
	ca := writeProbeFile(t, dir, "ca.crt", newTestCA(t, "ca").pem)
	url := "https://127.0.0.1:1"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no --url", []string{"--ca-file", ca}, "signgate probe: --url is required"},
		{"http", []string{"--url", "http://127.0.0.1:1", "--ca-file", ca}, "want https://HOST[:PORT]"},
		{"query", []string{"--url", url + "/?x=1", "--ca-file", ca}, "without user, query or fragment"},
		{"no --ca-file", []string{"--url", url}, "--ca-file is required"},
		{"cert without key", []string{"--url", url, "--ca-file", ca, "--cert-file", ca}, "--cert-file and --key-file go together"},
		{"bad timeout", []string{"--url", url, "--ca-file", ca, "--timeout", "0s"}, "--timeout must be positive"},
		{"bad namespace", []string{"--url", url, "--ca-file", ca, "-n", "Team_A"}, "--namespace \"Team_A\""},
		{"argument", []string{"--url", url, "--ca-file", ca, "extra"}, "unexpected argument \"extra\""},
		{"missing CA file", []string{"--url", url, "--ca-file", filepath.Join(dir, "missing.crt")}, "read --ca-file: open " + filepath.Join(dir, "missing.crt")},
		{"CA file not PEM", []string{"--url", url, "--ca-file", notPEM}, "--ca-file " + notPEM + ": no PEM certificates"},
		{"bad client pair", []string{"--url", url, "--ca-file", ca, "--cert-file", ca, "--key-file", notPEM}, "--cert-file " + ca + " and --key-file " + notPEM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := probeRun(t, tc.args...)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, stdout, stderr, tc.want)
			}
		})
	}
}
