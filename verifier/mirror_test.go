package verifier_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// mirrorVerifier returns a Verifier whose registry orig is read through
// mirrors (each allowed over plain HTTP on loopback, as orig is).
func mirrorVerifier(t *testing.T, orig string, mirrors ...verifier.Mirror) *verifier.Verifier {
	t.Helper()
	opts := verifier.Options{
		Timeout:            hangGuard,
		InsecureRegistries: []string{orig},
		AllowedHosts:       []string{orig},
		Mirrors:            map[string][]verifier.Mirror{orig: mirrors},
	}
	for _, m := range mirrors {
		opts.InsecureRegistries = append(opts.InsecureRegistries, m.Host)
		opts.AllowedHosts = append(opts.AllowedHosts, m.Host)
	}
	v, err := verifier.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// onOriginal is d (pushed to a mirror under prefix) as the pod names it:
// in registry orig, without the prefix.
func onOriginal(t *testing.T, orig, prefix string, d name.Digest) name.Digest {
	t.Helper()
	path := strings.TrimPrefix(d.Context().RepositoryStr(), prefix+"/")
	od, err := name.NewDigest(orig+"/"+path+"@"+d.DigestStr(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return od
}

// TestMirrorServesWhenOriginalIsDown: with the original registry refusing
// connections, a tag resolves and a digest verifies through the mirror
// (path prefix included), in both layouts, and the answers name the
// original repository.
func TestMirrorServesWhenOriginalIsDown(t *testing.T) {
	t.Parallel()
	for _, layout := range []registrytest.Layout{registrytest.Classic, registrytest.Bundle} {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			alice := registrytest.NewSigner(t)
			orig := registrytest.RefusedHost(t)
			mirror := registrytest.New(t)
			md := mirror.PushImage(t, "dockerhub/team/app", "v1")
			mirror.Sign(t, alice, md, layout)
			v := mirrorVerifier(t, orig, verifier.Mirror{Host: mirror.Host, Prefix: "dockerhub"})
			d := onOriginal(t, orig, "dockerhub", md)

			tag, err := name.NewTag(orig+"/team/app:v1", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Resolve(context.Background(), tag)
			if err != nil {
				t.Fatalf("Resolve through the mirror: %v", err)
			}
			if got.String() != d.String() {
				t.Errorf("Resolve = %s, want %s (the original repository)", got, d)
			}
			res, err := v.Verify(context.Background(), d, newSet(t, 1, authority("alice", alice)))
			if err != nil {
				t.Fatalf("Verify through the mirror: %v", err)
			}
			if res.Digest.String() != d.String() {
				t.Errorf("Result.Digest = %s, want %s (the original repository)", res.Digest, d)
			}
			if mirror.Requests() == 0 {
				t.Error("the mirror saw no request")
			}
		})
	}
}

// TestMirrorOrder: mirrors are tried in order; one that lacks the image
// (404) or is down is skipped; one that has it ends the search, so later
// ones and the original see nothing.
func TestMirrorOrder(t *testing.T) {
	t.Parallel()
	alice := registrytest.NewSigner(t)
	orig := registrytest.New(t)
	od := orig.PushImage(t, "team/app", "v1")
	orig.Sign(t, alice, od, registrytest.Classic)
	full := registrytest.New(t)
	fd := full.PushImage(t, "team/app", "v1")
	full.Sign(t, alice, fd, registrytest.Classic)
	if fd.DigestStr() == od.DigestStr() {
		t.Fatal("random images share a digest")
	}
	empty := registrytest.New(t)
	down := registrytest.RefusedHost(t)
	set := newSet(t, 1, authority("alice", alice))
	mirror := func(host string) verifier.Mirror { return verifier.Mirror{Host: host} }
	d := onOriginal(t, orig.Host, "", fd)

	t.Run("down, empty, full", func(t *testing.T) {
		v := mirrorVerifier(t, orig.Host, mirror(down), mirror(empty.Host), mirror(full.Host))
		for _, r := range []*registrytest.Registry{orig, full, empty} {
			r.ResetRequests()
		}
		if _, err := v.Verify(context.Background(), d, set); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if empty.Requests() == 0 || full.Requests() == 0 {
			t.Errorf("requests: empty %d, full %d; want both asked", empty.Requests(), full.Requests())
		}
		if n := orig.Requests(); n != 0 {
			t.Errorf("the original saw %d requests after a mirror answered, want 0: %v", n, orig.RequestLog())
		}
	})
	t.Run("full first", func(t *testing.T) {
		v := mirrorVerifier(t, orig.Host, mirror(full.Host), mirror(empty.Host))
		for _, r := range []*registrytest.Registry{orig, full, empty} {
			r.ResetRequests()
		}
		if _, err := v.Verify(context.Background(), d, set); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if n := empty.Requests() + orig.Requests(); n != 0 {
			t.Errorf("later sources saw %d requests after the first mirror answered, want 0", n)
		}
	})
	t.Run("mirrors down or empty: the original answers", func(t *testing.T) {
		v := mirrorVerifier(t, orig.Host, mirror(down), mirror(empty.Host))
		od := onOriginal(t, orig.Host, "", od)
		if _, err := v.Verify(context.Background(), od, set); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		tag, _ := name.NewTag(orig.Host+"/team/app:v1", name.Insecure)
		got, err := v.Resolve(context.Background(), tag)
		if err != nil || got.DigestStr() != od.DigestStr() {
			t.Fatalf("Resolve = %v, %v; want the original's %s", got, err, od.DigestStr())
		}
	})
	t.Run("a 5xx or a denial is skipped", func(t *testing.T) {
		broken, denying := registrytest.New(t), registrytest.New(t)
		broken.SetFault(registrytest.FailN(http.StatusServiceUnavailable, -1))
		denying.SetFault(registrytest.FailN(http.StatusForbidden, -1))
		v := mirrorVerifier(t, orig.Host, mirror(broken.Host), mirror(denying.Host), mirror(full.Host))
		if _, err := v.Verify(context.Background(), d, set); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if broken.Requests() == 0 || denying.Requests() == 0 {
			t.Errorf("requests: broken %d, denying %d; want both asked", broken.Requests(), denying.Requests())
		}
	})
	t.Run("all down: the original's error", func(t *testing.T) {
		origDown := registrytest.RefusedHost(t)
		v := mirrorVerifier(t, origDown, mirror(empty.Host))
		dd := onOriginal(t, origDown, "", fd)
		_, err := v.Verify(context.Background(), dd, set)
		var u *verifier.UndecidedError
		if !errors.As(err, &u) || !strings.Contains(u.Problem(), "unreachable") {
			t.Fatalf("Verify = %v, want undecided: the original unreachable", err)
		}
	})
}

// TestMirrorTampered: a mirror that serves other bytes under a digest (a
// classic signature's payload blob; a bundle's manifest) is caught by the
// digest check: never verified, the error names the mirror, and the
// original is not asked to make up for it.
func TestMirrorTampered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		layout registrytest.Layout
		fault  registrytest.Fault
	}{
		{registrytest.Classic, func(w http.ResponseWriter, req *http.Request) bool {
			if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
				w.Write([]byte(`{"critical":{"image":{"docker-manifest-digest":"sha256:0000"}}}`))
				return true
			}
			return false
		}},
		{registrytest.Bundle, func(w http.ResponseWriter, req *http.Request) bool {
			if strings.Contains(req.URL.Path, "/manifests/sha256:") {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`))
				return true
			}
			return false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.layout.String(), func(t *testing.T) {
			t.Parallel()
			alice := registrytest.NewSigner(t)
			orig := registrytest.New(t)
			mirror := registrytest.New(t)
			md := mirror.PushImage(t, "team/app", "v1")
			mirror.Sign(t, alice, md, tt.layout)
			mirror.SetFault(tt.fault)
			v := mirrorVerifier(t, orig.Host, verifier.Mirror{Host: mirror.Host})
			_, err := v.Verify(context.Background(), onOriginal(t, orig.Host, "", md), newSet(t, 1, authority("alice", alice)))
			var nv *verifier.NotVerifiedError
			if !errors.As(err, &nv) {
				t.Fatalf("Verify = %v, want not verified", err)
			}
			if !strings.Contains(err.Error(), "from mirror "+mirror.Host) {
				t.Errorf("error %q does not name the mirror", err)
			}
			if !strings.Contains(err.Error(), "digest") && !strings.Contains(err.Error(), "checksum") {
				t.Errorf("error %q does not say the bytes do not match the digest", err)
			}
			// The original may be asked what the mirror has not (the bundle
			// image has no .sig tag), never for what the mirror tampered with.
			for _, l := range orig.RequestLog() {
				if strings.Contains(l, "/blobs/") || strings.Contains(l, "/manifests/sha256:") || strings.Contains(l, "/referrers/") {
					t.Errorf("the original was asked %q after the mirror's answer failed its digest", l)
				}
			}
		})
	}
}

// TestMirrorOptions: invalid Options.Mirrors are refused by New, naming
// the registry.
func TestMirrorOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mirrors map[string][]verifier.Mirror
		want    string
	}{
		{"empty list", map[string][]verifier.Mirror{"docker.io": nil}, `mirrors of "docker.io": empty list`},
		{"bad key", map[string][]verifier.Mirror{"https://docker.io": {{Host: "m.example"}}}, `mirrors of "https://docker.io": the key must be a registry host`},
		{"bad host", map[string][]verifier.Mirror{"docker.io": {{Host: "m_x"}}}, `mirrors of "docker.io": mirror "m_x"`},
		{"bad prefix", map[string][]verifier.Mirror{"docker.io": {{Host: "m.example", Prefix: "A//b"}}}, `mirrors of "docker.io": mirror "m.example/A//b"`},
		{"itself", map[string][]verifier.Mirror{"docker.io": {{Host: "index.docker.io"}}}, `mirror "index.docker.io" is the registry itself`},
		{"two keys", map[string][]verifier.Mirror{"docker.io": {{Host: "a.example"}}, "index.docker.io": {{Host: "b.example"}}}, `"docker.io" names the same registry`},
		{"loop", map[string][]verifier.Mirror{"a.example": {{Host: "b.example"}}, "b.example": {{Host: "a.example"}}}, `mirrors of "a.example": mirror "b.example" has mirrors of its own`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := verifier.New(verifier.Options{Mirrors: tt.mirrors})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestMirrorRefused: a mirror one of the gate's own rules refuses (here:
// it answers in plain HTTP but is not an insecure registry) is reported,
// not read around, and the remedy names the mirror, not the registry the
// pod names.
func TestMirrorRefused(t *testing.T) {
	t.Parallel()
	orig := registrytest.New(t)
	od := orig.PushImage(t, "team/app", "v1")
	mirror := registrytest.New(t)
	mirror.PushImage(t, "team/app", "v1")
	v, err := verifier.New(verifier.Options{
		Timeout:            hangGuard,
		InsecureRegistries: []string{orig.Host},
		AllowedHosts:       []string{orig.Host, mirror.Host},
		Mirrors:            map[string][]verifier.Mirror{orig.Host: {{Host: mirror.Host}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(orig.Host+"/team/app:v1", name.Insecure)
	_, err = v.Resolve(context.Background(), tag)
	var r *verifier.RefusedError
	if !errors.As(err, &r) || r.Kind != verifier.RefusalPlainHTTP {
		t.Fatalf("Resolve = %v, want refused: plain HTTP", err)
	}
	want := "its mirror " + mirror.Host + " answered in plain HTTP; list it in registry.insecureRegistries"
	if !strings.Contains(r.Problem(), want) {
		t.Errorf("Problem() = %q, want it to contain %q", r.Problem(), want)
	}
	if r.Ref != tag.String() {
		t.Errorf("Ref = %q, want the original %q", r.Ref, tag)
	}
	if n := orig.Requests(); n != 0 {
		t.Errorf("the original saw %d requests, want 0 (%s was not tried: %v)", n, od, orig.RequestLog())
	}
}
