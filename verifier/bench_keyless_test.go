package verifier_test

import (
	"strconv"
	"testing"

	sgauthority "github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
	"github.com/signgate/signgate/verifier/bundle"
)

// newKeylessBenchEnv is newBenchEnv for a keyless signature: team/app:v1
// signed on the bundle layout (`cosign sign --new-bundle-format`) by a
// certificate for ghWorkflow from a virtual Fulcio, and an authority set
// trusting that identity under the Sigstore's trusted_root.json parsed as
// a TrustRoot is; classic signs on the classic .sig layout instead. With others, the set first lists that many authorities
// of the same TrustRoot trusting other workflows (policies commonly list
// several identities of one instance).
func newKeylessBenchEnv(b *testing.B, others int, classic bool) benchEnv {
	b.Helper()
	vs := registrytest.NewSigstore(b)
	reg := registrytest.New(b)
	d := reg.PushImage(b, "team/app", "v1")
	if classic {
		reg.SignKeylessClassic(b, vs, d, ghWorkflow, ghIssuer)
	} else {
		reg.SignKeyless(b, vs, d, ghWorkflow, ghIssuer)
	}
	tag, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		b.Fatal(err)
	}
	tr, err := bundle.ParseTrustedRoot(vs.TrustedRootJSON(b))
	if err != nil {
		b.Fatal(err)
	}
	id, err := sgauthority.NewIdentity(ghIssuer, "", ghWorkflow, "")
	if err != nil {
		b.Fatal(err)
	}
	root := sgauthority.TrustRoot{Name: "corp", Material: tr, Digest: "bench-root"}
	var as []verifier.Authority
	for i := range others {
		other, err := sgauthority.NewIdentity(ghIssuer, "", ghWorkflow+"-other-"+strconv.Itoa(i), "")
		if err != nil {
			b.Fatal(err)
		}
		ok, err := sgauthority.NewKeyless(root, []sgauthority.Identity{other}, nil)
		if err != nil {
			b.Fatal(err)
		}
		as = append(as, verifier.Authority{Name: "other-" + strconv.Itoa(i), Keyless: ok})
	}
	k, err := sgauthority.NewKeyless(root, []sgauthority.Identity{id}, nil)
	if err != nil {
		b.Fatal(err)
	}
	as = append(as, verifier.Authority{Name: "release", Keyless: k})
	return benchEnv{reg: reg, tag: tag, d: d, set: newSet(b, 1, as...)}
}

// bundleBenchEnvs are the two signatures compared: a key signature and a
// keyless one, both on the bundle layout.
func bundleBenchEnvs(b *testing.B) []struct {
	name string
	env  benchEnv
} {
	return []struct {
		name string
		env  benchEnv
	}{
		{"key", newBenchEnv(b, registrytest.Bundle)},
		{"keyless", newKeylessBenchEnv(b, 0, false)},
		{"keyless-3-authorities", newKeylessBenchEnv(b, 2, false)},
	}
}

// coldRequests is the number of registry requests of one uncached Verify
// of e.d on a warm transport.
func coldRequests(b *testing.B, e benchEnv) int64 {
	b.Helper()
	v := newVerifier(b, e.reg, verifier.Options{CacheSize: -1, TagTTL: -1})
	if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
		b.Fatal(err)
	}
	e.reg.ResetRequests()
	if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
		b.Fatal(err)
	}
	return e.reg.Requests()
}

// BenchmarkVerifyBundleCold: verifying a digest signed on the bundle
// layout with the verdict cache off, on a warm transport (the registry's
// ping and token reused, as in a running gate), with a key vs keyless.
// Both make the same registry requests (asserted: the comparison is of
// verification work, not of I/O). Target (keyless issue): keyless ≤ 2×
// key.
func BenchmarkVerifyBundleCold(b *testing.B) { benchCold(b, bundleBenchEnvs(b)) }

// BenchmarkVerifyClassicCold is BenchmarkVerifyBundleCold on the classic
// .sig layout: a key signature vs a keyless one (certificate, chain, Rekor
// bundle and RFC 3161 annotations).
func BenchmarkVerifyClassicCold(b *testing.B) {
	benchCold(b, []struct {
		name string
		env  benchEnv
	}{
		{"key", newBenchEnv(b, registrytest.Classic)},
		{"keyless", newKeylessBenchEnv(b, 0, true)},
	})
}

// benchCold benchmarks uncached verifications of each env, which must
// make the same registry requests.
func benchCold(b *testing.B, envs []struct {
	name string
	env  benchEnv
}) {
	want := int64(-1)
	for _, tc := range envs {
		n := coldRequests(b, tc.env)
		if want >= 0 && n != want {
			b.Fatalf("cold %s verification makes %d registry requests, %s %d: not comparable", tc.name, n, envs[0].name, want)
		}
		want = n
	}
	for _, tc := range envs {
		b.Run(tc.name, func(b *testing.B) {
			e := tc.env
			v := newVerifier(b, e.reg, verifier.Options{CacheSize: -1, TagTTL: -1})
			if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
				b.Fatal(err)
			}
			e.reg.ResetRequests()
			b.ReportAllocs()
			b.ResetTimer()
			var n int64
			for b.Loop() {
				res, err := v.Verify(b.Context(), e.d, e.set)
				if err != nil {
					b.Fatal(err)
				}
				if res.Cached {
					b.Fatal("cached verdict with the cache off")
				}
				n++
			}
			b.StopTimer()
			if got := e.reg.Requests(); got != n*want {
				b.Fatalf("%d registry requests for %d verifications, want %d each", got, n, want)
			}
			e.reportRequests(b)
		})
	}
}

// BenchmarkVerifyBundleCached: a verdict cache hit for a bundle signature,
// key vs keyless. Target (keyless issue): a cached keyless verdict costs
// what a cached key verdict costs; no registry requests.
func BenchmarkVerifyBundleCached(b *testing.B) {
	for _, tc := range bundleBenchEnvs(b) {
		b.Run(tc.name, func(b *testing.B) {
			e := tc.env
			v := newVerifier(b, e.reg, verifier.Options{})
			if _, err := v.Verify(b.Context(), e.d, e.set); err != nil {
				b.Fatal(err)
			}
			e.reg.ResetRequests()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := v.Verify(b.Context(), e.d, e.set)
				if err != nil {
					b.Fatal(err)
				}
				if !res.Cached {
					b.Fatal("verdict not cached")
				}
			}
			b.StopTimer()
			if n := e.reg.Requests(); n != 0 {
				b.Fatalf("%d registry requests for cached verdicts", n)
			}
			e.reportRequests(b)
		})
	}
}
