package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeRegistryCredentials: `serve` reads a private registry with the
// credentials of the docker config in $DOCKER_CONFIG (where the chart
// mounts registryCredentials.existingSecret), re-read when it changes.
// Not parallel: it sets environment variables.
func TestServeRegistryCredentials(t *testing.T) {
	f := newFixture(t, 1, 0, "")
	// A registry that wants basic auth: the fixture's, behind a proxy.
	target, err := url.Parse("http://" + f.reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "robot" || pass != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(private.Close)
	host := strings.TrimPrefix(private.URL, "http://")
	f.writePolicy(t, "private", host+"/team-a/**")
	writeAtomic(t, f.config, "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nunmatchedImages: deny\npolicies: {namespacePoliciesCoverImages: true}\n"+
		"registry: {insecureRegistries: [\""+host+"\"], allowedHosts: [\""+host+"\"]}\n"+
		"cache: {failureTTL: 1s}\n")

	dockerConfig := t.TempDir()
	t.Setenv("HOME", t.TempDir()) // no ~/.docker/config.json of the machine
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	writeDockerConfig := func(user, pass string) {
		t.Helper()
		cfg, err := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		writeAtomic(t, filepath.Join(dockerConfig, "config.json"), string(cfg))
	}
	writeDockerConfig("robot", "wrong")

	o := f.options(t)
	s, _ := startServer(t, o)
	base := "https://" + s.WebhookAddr().String()
	client, _ := loadClient(1)
	image := host + strings.TrimPrefix(f.signed[0], f.reg.Host)
	review := func() reviewCase {
		return reviewCase{name: "private", path: "/validate?timeout=10s",
			body: podReview("CREATE", "team-a", podJSON([]string{image}, false))}
	}

	// Wrong password: the registry refuses, the gate denies.
	r, err := send(context.Background(), client, base, review())
	if err != nil {
		t.Fatal(err)
	}
	if r.Allowed {
		t.Fatal("allowed with the wrong registry password")
	}
	msg := resultMessage(r)
	t.Logf("wrong password: %s", msg)
	for _, want := range []string{"denied signgate read access", "give signgate credentials that can read " + host + "/team-a/app0"} {
		if !strings.Contains(msg, want) {
			t.Errorf("denial %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "sign it") {
		t.Errorf("denial %q tells the user to sign an image the gate could not read", msg)
	}

	// The Secret is rotated in place: once the definite failure leaves the
	// cache (failureTTL 1s) and the verifier may renew its registry session
	// (at most every 10s), the next review reads the file again.
	writeDockerConfig("robot", "s3cret")
	fixed := time.Now()
	waitFor(t, "a review allowed with the fixed credentials", func() error {
		r, err := send(t.Context(), client, base, review())
		if err != nil {
			t.Fatal(err)
		}
		if !r.Allowed {
			return fmt.Errorf("still denied: %s", resultMessage(r))
		}
		return nil
	})
	t.Logf("allowed %s after the credentials were fixed", time.Since(fixed).Round(time.Millisecond))
}
