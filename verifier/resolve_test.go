package verifier_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// count returns how many logged requests start with prefix ("HEAD ",
// "GET /v2/team/app/manifests/").
func count(reg *registrytest.Registry, prefix string) int {
	n := 0
	for _, l := range reg.RequestLog() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func TestResolve(t *testing.T) {
	t.Parallel()
	// headless answers HEAD with 405, as some registries and proxies do.
	headless := func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodHead {
			http.Error(w, "no HEAD here", http.StatusMethodNotAllowed)
			return true
		}
		return false
	}
	// headOnly applies f to HEAD requests only.
	headOnly := func(f registrytest.Fault) func(*registrytest.Registry, []byte) registrytest.Fault {
		return func(*registrytest.Registry, []byte) registrytest.Fault {
			return func(w http.ResponseWriter, req *http.Request) bool {
				return req.Method == http.MethodHead && f(w, req)
			}
		}
	}
	// garbageToken demands a token from /token on the registry, which
	// answers 200 without one.
	garbageToken := func(reg *registrytest.Registry, _ []byte) registrytest.Fault {
		return func(w http.ResponseWriter, req *http.Request) bool {
			if req.URL.Path == "/token" {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"detail":"no token for you"}`))
				return true
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+reg.Host+`/token",service="`+reg.Host+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
	}
	// noDigest answers HEAD 200 without Docker-Content-Digest.
	noDigest := func(w http.ResponseWriter, req *http.Request) bool {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		return true
	}
	tests := []struct {
		name       string
		fault      func(reg *registrytest.Registry, manifest []byte) registrytest.Fault
		tag        string
		wantErr    string // "" | "undecided" | substring of a definite error
		wantHEADs  int
		wantGETs   int
		wantTokens int // token requests (GET or POST /token)
	}{
		{name: "HEAD", tag: "v1", wantHEADs: 1},
		{name: "GET fallback", tag: "v1", fault: func(*registrytest.Registry, []byte) registrytest.Fault { return headless }, wantHEADs: 1, wantGETs: 1},
		{
			name: "GET with a digest that does not match the bytes",
			tag:  "v1",
			fault: func(_ *registrytest.Registry, manifest []byte) registrytest.Fault {
				return func(w http.ResponseWriter, req *http.Request) bool {
					if headless(w, req) {
						return true
					}
					if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/manifests/") {
						w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
						w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
						w.Write(manifest)
						return true
					}
					return false
				}
			},
			wantErr:   "do not match Docker-Content-Digest",
			wantHEADs: 1, wantGETs: 1,
		},
		{name: "tag not found", tag: "nope", wantErr: "tag not found", wantHEADs: 1},
		{name: "registry down", tag: "v1", fault: func(*registrytest.Registry, []byte) registrytest.Fault { return registrytest.FailN(503, -1) }, wantErr: "undecided"},
		// GET only where it helps: HEAD unsupported or answered without
		// the headers needed. Not after authentication errors, 5xx or a
		// failed token exchange: a GET would get the same answer, and
		// repeat the token exchange.
		{name: "HEAD without Docker-Content-Digest", tag: "v1", fault: headOnly(noDigest), wantHEADs: 1, wantGETs: 1},
		{name: "HEAD 401: no GET", tag: "v1", fault: headOnly(registrytest.FailN(401, -1)), wantErr: "denied", wantHEADs: 1},
		{name: "HEAD 403: no GET", tag: "v1", fault: headOnly(registrytest.FailN(403, -1)), wantErr: "denied", wantHEADs: 1},
		{name: "HEAD 500: no GET", tag: "v1", fault: headOnly(registrytest.FailN(500, -1)), wantErr: "undecided", wantHEADs: 1},
		{name: "HEAD 404: no GET", tag: "v1", fault: headOnly(registrytest.FailN(404, -1)), wantErr: "tag not found", wantHEADs: 1},
		{name: "token exchange fails: no second attempt", tag: "v1", fault: garbageToken, wantErr: "no token", wantTokens: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			desc, err := remote.Get(d, reg.RemoteOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.fault != nil {
				reg.SetFault(tc.fault(reg, desc.Manifest))
			}
			v := newVerifier(t, reg, verifier.Options{})
			ref, err := verifier.ParseReference(reg.Host + "/team/app:" + tc.tag)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Resolve(t.Context(), ref)
			switch {
			case tc.wantErr == "undecided":
				if !verifier.IsUndecided(err) {
					t.Fatalf("err = %v, want undecided", err)
				}
			case tc.wantErr != "":
				if err == nil || verifier.IsUndecided(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a definite error containing %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case got.String() != d.String():
				t.Fatalf("Resolve = %s, want %s", got, d)
			}
			if n := count(reg, "GET /token") + count(reg, "POST /token"); n != tc.wantTokens {
				t.Errorf("token requests = %d, want %d: %v", n, tc.wantTokens, reg.RequestLog())
			}
			if n := count(reg, "HEAD /v2/team/app/manifests/"); n != tc.wantHEADs {
				t.Errorf("HEAD requests = %d, want %d: %v", n, tc.wantHEADs, reg.RequestLog())
			}
			if n := count(reg, "GET /v2/team/app/manifests/"); n != tc.wantGETs {
				t.Errorf("GET requests = %d, want %d: %v", n, tc.wantGETs, reg.RequestLog())
			}
		})
	}
}

func TestResolveTagCache(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		tagTTL        int // -1 disables
		wantSecondReq int64
	}{
		{"cached", 0, 0},
		{"disabled", -1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, reg, verifier.Options{TagTTL: timeDuration(tc.tagTTL)})
			// 50 concurrent resolutions of a cold tag: one HEAD. The
			// registry holds it until all 50 have joined, so that none
			// comes late and starts its own.
			reg.ResetRequests()
			hold := registrytest.NewHold(nil)
			t.Cleanup(hold.Release)
			reg.SetFault(hold.Fault)
			const callers = 50
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					if got, err := v.Resolve(t.Context(), ref); err != nil || got.String() != d.String() {
						t.Errorf("Resolve = %v, %v", got, err)
					}
				})
			}
			waitFor(t, "every caller to join the resolution", func() bool {
				return verifier.ResolveWaiters(v, ref.(name.Tag)) == callers
			})
			reg.SetFault(nil)
			hold.Release()
			wg.Wait()
			if n := count(reg, "HEAD "); n != 1 {
				t.Errorf("concurrent resolutions sent %d HEADs, want 1", n)
			}
			reg.ResetRequests()
			if _, err := v.Resolve(t.Context(), ref); err != nil {
				t.Fatal(err)
			}
			if got := reg.Requests(); got != tc.wantSecondReq {
				t.Errorf("second resolution made %d requests, want %d", got, tc.wantSecondReq)
			}
		})
	}
}

func timeDuration(n int) time.Duration { return time.Duration(n) }

func TestResolveDigestNeedsNoRegistry(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	v := newVerifier(t, reg, verifier.Options{})
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1@" + d.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Resolve(t.Context(), ref)
	if err != nil || got.String() != d.String() {
		t.Fatalf("Resolve = %v, %v; want %s", got, err, d)
	}
	if n := reg.Requests(); n != 0 {
		t.Errorf("resolving a digest made %d requests", n)
	}
}

// TestNetworkRules: the registry on 127.0.0.1 is refused unless allowed,
// and is reached over plain HTTP only when listed as insecure. Both are
// definite failures with a hint, not "retry".
func TestNetworkRules(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    verifier.Options
		wantErr string
	}{
		{"loopback blocked", verifier.Options{InsecureRegistries: []string{reg.Host}}, "allowedHosts"},
		{"plain HTTP not allowed", verifier.Options{AllowedHosts: []string{reg.Host}}, "insecureRegistries"},
		{"allowed and insecure", verifier.Options{AllowedHosts: []string{reg.Host}, InsecureRegistries: []string{reg.Host}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := verifier.New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, rerr := v.Resolve(t.Context(), ref)
			_, verr := v.Verify(t.Context(), d, newSet(t, 0, authority("a", registrytest.NewSigner(t))))
			if tc.wantErr == "" {
				var nv *verifier.NotVerifiedError
				if rerr != nil || !errors.As(verr, &nv) || nv.Reason != "no signatures found" {
					t.Fatalf("Resolve: %v; Verify: %v; want success and 'no signatures found'", rerr, verr)
				}
				return
			}
			for _, err := range []error{rerr, verr} {
				if err == nil || verifier.IsUndecided(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want a definite error mentioning %s", err, tc.wantErr)
				}
			}
		})
	}
}

// TestBodyCaps: oversized payloads are refused, definitely.
func TestBodyCaps(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	v := newVerifier(t, reg, verifier.Options{MaxPayloadBytes: 16})
	_, err := v.Verify(context.Background(), d, newSet(t, 0, authority("alice", alice)))
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("err = %v, want not verified because the payload is too large", err)
	}
}
