package verifier_test

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// benchEnv is a registry with one signed, tagged image.
type benchEnv struct {
	reg *registrytest.Registry
	tag name.Reference
	d   name.Digest
	set verifier.AuthoritySet
}

func newBenchEnv(b *testing.B, layout registrytest.Layout) benchEnv {
	b.Helper()
	s := registrytest.NewSigner(b)
	reg := registrytest.New(b)
	d := reg.PushImage(b, "team/app", "v1")
	reg.Sign(b, s, d, layout)
	tag, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		b.Fatal(err)
	}
	return benchEnv{reg: reg, tag: tag, d: d, set: newSet(b, 0, authority("ci", s))}
}

// reportRequests reports registry requests per operation since the last
// ResetRequests.
func (e benchEnv) reportRequests(b *testing.B) {
	b.ReportMetric(float64(e.reg.Requests())/float64(b.N), "requests/op")
}

// resolveAndVerify is what admission does for a tag.
func (e benchEnv) resolveAndVerify(b *testing.B, v *verifier.Verifier) {
	d, err := v.Resolve(b.Context(), e.tag)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := v.Verify(b.Context(), d, e.set); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkVerifyCached: a verdict cache hit. Target < 2µs, 0 requests.
func BenchmarkVerifyCached(b *testing.B) {
	e := newBenchEnv(b, registrytest.Classic)
	v := newVerifier(b, e.reg, verifier.Options{})
	if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
		b.Fatal(err)
	}
	e.reg.ResetRequests()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
			b.Fatal(err)
		}
	}
	e.reportRequests(b)
}

// BenchmarkVerifyCold: resolve a tag and verify its digest with both
// caches off. "warm-transport" is the steady state of a running gate (the
// registry's ping and token are reused); "new-verifier" also pays the
// ping. Target: at most 4 requests for a classic signature.
func BenchmarkVerifyCold(b *testing.B) {
	for _, layout := range []registrytest.Layout{registrytest.Classic, registrytest.Bundle} {
		b.Run(layout.String()+"/warm-transport", func(b *testing.B) {
			e := newBenchEnv(b, layout)
			v := newVerifier(b, e.reg, verifier.Options{CacheSize: -1, TagTTL: -1})
			e.resolveAndVerify(b, v)
			e.reg.ResetRequests()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.resolveAndVerify(b, v)
			}
			e.reportRequests(b)
		})
		b.Run(layout.String()+"/new-verifier", func(b *testing.B) {
			e := newBenchEnv(b, layout)
			e.reg.ResetRequests()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				// Own transport per Verifier, closed after use, so that
				// thousands of iterations do not pile up connections.
				tr := http.DefaultTransport.(*http.Transport).Clone()
				e.resolveAndVerify(b, newVerifier(b, e.reg, verifier.Options{CacheSize: -1, TagTTL: -1, Transport: tr}))
				tr.CloseIdleConnections()
			}
			e.reportRequests(b)
		})
	}
}

// BenchmarkResolve: a tag resolution, uncached (one HEAD) and cached.
func BenchmarkResolve(b *testing.B) {
	for _, tc := range []struct {
		name   string
		tagTTL int
	}{{"uncached", -1}, {"cached", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newBenchEnv(b, registrytest.Classic)
			v := newVerifier(b, e.reg, verifier.Options{TagTTL: timeDuration(tc.tagTTL)})
			if _, err := v.Resolve(b.Context(), e.tag); err != nil {
				b.Fatal(err)
			}
			e.reg.ResetRequests()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Resolve(b.Context(), e.tag); err != nil {
					b.Fatal(err)
				}
			}
			e.reportRequests(b)
		})
	}
}
