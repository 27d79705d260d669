package admission

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLogLineNeverCarriesRegistryText: the one log line per review holds
// neither what a registry answered (its error body) nor the credentials
// the gate sent it (the bearer token in the Authorization header), even
// when the registry echoes the header back in its body. The reason in the
// line is the denial's, built from the verifier's own words.
func TestLogLineNeverCarriesRegistryText(t *testing.T) {
	const token = "SECRET-BEARER-TOKEN-4f1c9a" // what the token service issues
	for _, rv := range []struct {
		name    string
		webhook Webhook
	}{
		{"mutate-pod-tags", WebhookMutate},
		{"validate-deployment-signed-tag", WebhookValidate},
	} {
		t.Run(rv.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, configDefault)
			var sentToken atomic.Bool
			e.reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
				auth := req.Header.Get("Authorization")
				switch {
				case req.URL.Path == "/token":
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"token":"`+token+`","expires_in":300}`)
				case auth == "Bearer "+token:
					sentToken.Store(true)
					w.WriteHeader(http.StatusInternalServerError)
					io.WriteString(w, `{"errors":[{"code":"UNKNOWN","message":"`+hostile+` `+auth+` `+strings.Repeat("x", 4096)+`"}]}`)
				default:
					w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+e.reg.Host+`/token",service="`+e.reg.Host+`"`)
					w.WriteHeader(http.StatusUnauthorized)
					io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"`+hostile+`"}]}`)
				}
				return true
			})
			var buf lockedBuffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			e.postWith(t, rv.webhook, e.review(t, rv.name), "?timeout=10s", HandlerOptions{Logger: log})
			if !sentToken.Load() {
				t.Fatal("the registry never saw the bearer token: the test does not exercise an authenticated error answer")
			}
			out := buf.String()
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line); err != nil || line["msg"] != "admission" {
				t.Fatalf("want one admission log line, got (%v):\n%s", err, out)
			}
			for _, secret := range []string{hostile, token, "Bearer", "xxxxxxxx"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q, from the registry's answer or the request's Authorization header:\n%s", secret, out)
				}
			}
			t.Log(e.normalize(out))
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
