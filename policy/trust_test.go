package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signgate/signgate/internal/imageref"
)

// testKeys are generated once per test binary: RSA generation is slow.
var testKeys = sync.OnceValue(func() map[string]string {
	gen := map[string]func() (crypto.PublicKey, error){
		"P256":    func() (crypto.PublicKey, error) { return ecPub(elliptic.P256()) },
		"P256B":   func() (crypto.PublicKey, error) { return ecPub(elliptic.P256()) },
		"P256C":   func() (crypto.PublicKey, error) { return ecPub(elliptic.P256()) },
		"P384":    func() (crypto.PublicKey, error) { return ecPub(elliptic.P384()) },
		"P521":    func() (crypto.PublicKey, error) { return ecPub(elliptic.P521()) },
		"RSA2048": func() (crypto.PublicKey, error) { return rsaPub(2048) },
		"RSA1024": func() (crypto.PublicKey, error) { return rsaPub(1024) },
		"ED25519": func() (crypto.PublicKey, error) {
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			return pub, err
		},
	}
	out := map[string]string{}
	for name, g := range gen {
		k, err := g()
		if err != nil {
			panic(err)
		}
		out[name] = pemPublicKey(k)
	}
	out["P256P384"] = out["P256"] + out["P384"]
	return out
})

func ecPub(c elliptic.Curve) (crypto.PublicKey, error) {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

func rsaPub(bits int) (crypto.PublicKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

func pemPublicKey(k crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// withKeys replaces {{NAME}} by the quoted PEM of test key NAME, usable as a
// YAML double-quoted scalar.
func withKeys(s string) string {
	var pairs []string
	for name, p := range testKeys() {
		pairs = append(pairs, "{{"+name+"}}", strconv.Quote(p))
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// compileYAML decodes and compiles policies the way FileSource does, with
// ClusterImagePolicy secrets and TrustRoot refs in "signgate-system".
func compileYAML(t testing.TB, doc string) (*trustSet, []compileResult) {
	t.Helper()
	objs := newObjects()
	if err := decodeObjects(objs, "test.yaml", []byte(withKeys(doc))); err != nil {
		t.Fatalf("decode: %v", err)
	}
	c := compiler{gateNamespace: "signgate-system", secrets: func(ns, name string) (map[string][]byte, error) {
		if d, ok := objs.secrets[ns][name]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("not found")
	}, configMaps: func(ns, name string) (map[string][]byte, error) {
		if d, ok := objs.configMaps[ns][name]; ok {
			return d, nil
		}
		return nil, fmt.Errorf("not found")
	}, trustRootObjs: objs.trustRoots}
	return c.compile(objs.policies)
}

// req summarizes a Requirement for comparison.
type req struct {
	Policy      string
	Mode        Mode
	Static      string
	Threshold   int
	Authorities []string
	Err         string
}

func summarize(rs []Requirement) []req {
	var out []req
	for _, r := range rs {
		s := req{Policy: r.Policy, Mode: r.Mode, Static: r.Static, Threshold: r.Authorities.Threshold()}
		for _, a := range r.Authorities.All() {
			s.Authorities = append(s.Authorities, a.Name)
		}
		if r.Err != nil {
			s.Err = r.Err.Error()
		}
		out = append(out, s)
	}
	return out
}

const basePolicies = `
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: corp}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities: [{name: corp-key, key: {data: {{P256}}}}]
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: prod-only}
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  images: [{glob: "registry.example.com/prod/*"}]
  threshold: 2
  authorities:
  - {name: release-a, key: {data: {{P384}}}}
  - {name: release-b, key: {data: {{ED25519}}}}
  - {name: release-c, key: {secretRef: {name: release-c, key: cosign.pub}}}
---
apiVersion: v1
kind: Secret
metadata: {name: release-c, namespace: signgate-system}
stringData: {cosign.pub: {{RSA2048}}}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: hub-warn}
spec:
  mode: warn
  images: [{glob: "docker.io/*"}]
  authorities: [{name: mirror, key: {data: {{P256B}}}}]
---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: ci, namespace: team-a}
spec:
  images: [{glob: "registry.example.com/team-a/**"}]
  authorities: [{name: ci-key, key: {secretRef: {name: ci, key: cosign.pub}}}]
---
apiVersion: v1
kind: Secret
metadata: {name: ci, namespace: team-a}
stringData: {cosign.pub: {{P256C}}}
---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: legacy, namespace: team-a}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities: [{name: legacy-key, key: {data: {{P384}}}}]
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: audit-all}
spec:
  namespaceSelector: {matchLabels: {team: b}}
  mode: audit
  images: [{glob: "**"}]
  static: {action: fail}
`

func TestRequirements(t *testing.T) {
	t.Parallel()
	trust, results := compileYAML(t, basePolicies)
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("unexpected invalid policy: %v", r.Err)
		}
	}
	corp := req{Policy: "ClusterImagePolicy corp", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"corp-key"}}
	prod := req{Policy: "ClusterImagePolicy prod-only", Mode: ModeEnforce, Threshold: 2, Authorities: []string{"release-a", "release-b", "release-c"}}
	hub := req{Policy: "ClusterImagePolicy hub-warn", Mode: ModeWarn, Threshold: 1, Authorities: []string{"mirror"}}
	ci := req{Policy: "ImagePolicy team-a/ci", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"ci-key"}}
	legacy := req{Policy: "ImagePolicy team-a/legacy", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"legacy-key"}}
	auditAll := req{Policy: "ClusterImagePolicy audit-all", Mode: ModeAudit, Static: StaticFail}
	prodLabels := map[string]string{"env": "prod"}

	tests := []struct {
		name      string
		namespace string
		labels    map[string]string
		repo      string
		want      []req
	}{
		{"unmatched", "default", nil, "quay.io/x/y", nil},
		{"cluster policy", "default", nil, "registry.example.com/app", []req{corp}},
		{"selector does not match", "default", map[string]string{"env": "dev"}, "registry.example.com/prod/app", []req{corp}},
		{"selector matches: AND of two cluster policies", "default", prodLabels, "registry.example.com/prod/app", []req{corp, prod}},
		{"cluster and namespace policies, AND", "team-a", nil, "registry.example.com/team-a/app", []req{corp, ci, legacy}},
		{"namespace policy adds to the cluster policy", "team-a", nil, "registry.example.com/other", []req{corp, legacy}},
		{"ImagePolicy only in its namespace", "team-c", nil, "registry.example.com/team-a/app", []req{corp}},
		{"docker hub short glob", "default", nil, "index.docker.io/library/nginx", []req{hub}},
		{"docker hub org not matched", "default", nil, "index.docker.io/acme/nginx", nil},
		{"evil host not matched", "default", nil, "docker.io.evil.com/nginx", nil},
		{"static fail in audit mode", "team-b", map[string]string{"team": "b"}, "quay.io/x/y", []req{auditAll}},
		{"upper-case host", "default", nil, "Registry.Example.com/app", []req{corp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := summarize(trust.requirements(tt.namespace, tt.labels, imageref.ParseRepo(tt.repo)))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("requirements(%q, %v, %q) mismatch (-want +got):\n%s", tt.namespace, tt.labels, tt.repo, diff)
			}
		})
	}
}

// TestInvalidPolicies: an invalid policy never disappears. It turns into a
// Requirement with Err (mode enforce) for the images in its scope; when its
// globs cannot be used, its scope is every image its namespace scope covers.
func TestInvalidPolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		policy    string
		namespace string
		labels    map[string]string
		repo      string
		want      string // Err, "" = no requirement at all
	}{
		{
			name: "bad PEM",
			policy: `kind: ClusterImagePolicy
spec:
  mode: audit
  images: [{glob: "registry.example.com/**"}]
  authorities: [{name: k, key: {data: "not a key"}}]`,
			repo: "registry.example.com/app",
			want: `ClusterImagePolicy p is invalid: authority "k": parse public key: no PEM block`,
		},
		{
			name: "bad PEM outside its globs",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities: [{name: k, key: {data: "not a key"}}]`,
			repo: "quay.io/app",
		},
		{
			name: "RSA too small",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]
  authorities: [{name: k, key: {data: {{RSA1024}}}}]`,
			repo: "quay.io/app",
			want: `ClusterImagePolicy p is invalid: authority "k": parse public key: RSA key of 1024 bits, want at least 2048`,
		},
		{
			name: "P-521 not supported",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]
  authorities: [{name: k, key: {data: {{P521}}}}]`,
			repo: "quay.io/app",
			want: `ClusterImagePolicy p is invalid: authority "k": parse public key: ECDSA curve P-521 not supported, want P-256 or P-384`,
		},
		{
			name: "threshold above authorities",
			policy: `kind: ClusterImagePolicy
spec:
  threshold: 3
  images: [{glob: "**"}]
  authorities: [{name: a, key: {data: {{P256}}}}, {name: b, key: {data: {{ED25519}}}}]`,
			repo: "quay.io/app",
			want: `ClusterImagePolicy p is invalid: threshold 3: want between 1 and the number of authorities (2)`,
		},
		{
			name: "threshold above distinct keys",
			policy: `kind: ClusterImagePolicy
spec:
  threshold: 2
  images: [{glob: "**"}]
  authorities: [{name: a, key: {data: {{P256}}}}, {name: b, key: {data: {{P256}}}}]`,
			repo: "quay.io/app",
			want: `ClusterImagePolicy p is invalid: authorities: threshold 2 is more than the 1 distinct authorities (authorities with the same key or keyless identities count once)`,
		},
		{
			name: "two keys in one PEM",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]
  authorities: [{name: a, key: {data: {{P256P384}}}}]`,
			repo: "quay.io/app",
			want: `ClusterImagePolicy p is invalid: authority "a": parse public key: more than one PEM block`,
		},
		{
			name: "missing secret of a cluster policy is looked up in the gate namespace",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]
  authorities: [{name: a, key: {secretRef: {name: gone, key: cosign.pub}}}]`,
			repo: "quay.io/app",
			want: `ClusterImagePolicy p is invalid: authority "a": read secret signgate-system/gone: not found`,
		},
		{
			name: "missing secret of an ImagePolicy is looked up in its namespace",
			policy: `kind: ImagePolicy
metadata: {namespace: team-a}
spec:
  images: [{glob: "**"}]
  authorities: [{name: a, key: {secretRef: {name: gone, key: cosign.pub}}}]`,
			namespace: "team-a",
			repo:      "quay.io/app",
			want:      `ImagePolicy team-a/p is invalid: authority "a": read secret team-a/gone: not found`,
		},
		{
			name: "bad glob in a cluster policy covers every image in selected namespaces",
			policy: `kind: ClusterImagePolicy
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  images: [{glob: "registry.example.com/Team/**"}, {glob: "quay.io/**"}]
  authorities: [{name: a, key: {data: {{P256}}}}]`,
			labels: map[string]string{"env": "prod"},
			repo:   "ghcr.io/anything",
			want:   `ClusterImagePolicy p is invalid: images[0]: compile glob "registry.example.com/Team/**": "Team": invalid character 'T'`,
		},
		{
			name: "bad glob in a cluster policy: unselected namespace unaffected",
			policy: `kind: ClusterImagePolicy
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  images: [{glob: "registry.example.com/Team/**"}]
  authorities: [{name: a, key: {data: {{P256}}}}]`,
			labels: map[string]string{"env": "dev"},
			repo:   "ghcr.io/anything",
		},
		{
			name: "bad glob in an ImagePolicy covers its namespace",
			policy: `kind: ImagePolicy
metadata: {namespace: team-a}
spec:
  images: [{glob: ""}]
  static: {action: fail}`,
			namespace: "team-a",
			repo:      "ghcr.io/anything",
			want:      `ImagePolicy team-a/p is invalid: images[0]: compile glob "": empty path segment`,
		},
		{
			name: "bad glob in an ImagePolicy: other namespaces unaffected",
			policy: `kind: ImagePolicy
metadata: {namespace: team-a}
spec:
  images: [{glob: ""}]
  static: {action: fail}`,
			namespace: "team-b",
			repo:      "ghcr.io/anything",
		},
		{
			name: "bad selector covers every namespace",
			policy: `kind: ClusterImagePolicy
spec:
  namespaceSelector: {matchExpressions: [{key: env, operator: Sometimes}]}
  images: [{glob: "quay.io/**"}]
  static: {action: pass}`,
			repo: "quay.io/app",
			want: `ClusterImagePolicy p is invalid: namespaceSelector: "Sometimes" is not a valid label selector operator`,
		},
		{
			name: "misspelt field does not weaken, it denies everything in scope",
			policy: `kind: ClusterImagePolicy
spec:
  treshold: 2
  images: [{glob: "quay.io/**"}]
  authorities: [{name: a, key: {data: {{P256}}}}]`,
			repo: "ghcr.io/other",
			want: `ClusterImagePolicy p is invalid: decode: error unmarshaling JSON: while decoding JSON: json: unknown field "treshold"`,
		},
		{
			name: "no images",
			policy: `kind: ClusterImagePolicy
spec:
  static: {action: fail}`,
			repo: "ghcr.io/other",
			want: `ClusterImagePolicy p is invalid: images: at least one glob is required`,
		},
		{
			name: "both static and authorities",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]
  static: {action: pass}
  authorities: [{name: a, key: {data: {{P256}}}}]`,
			repo: "ghcr.io/other",
			want: `ClusterImagePolicy p is invalid: exactly one of authorities or static is required, both are set`,
		},
		{
			name: "neither static nor authorities",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]`,
			repo: "ghcr.io/other",
			want: `ClusterImagePolicy p is invalid: exactly one of authorities or static is required, neither is set`,
		},
		{
			name: "bad static action and mode, all problems listed",
			policy: `kind: ClusterImagePolicy
spec:
  mode: loud
  images: [{glob: "**"}]
  static: {action: maybe}`,
			repo: "ghcr.io/other",
			want: `ClusterImagePolicy p is invalid: parse mode "loud": want enforce, warn or audit; static.action "maybe": want pass or fail`,
		},
		{
			name: "duplicate authority names",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]
  authorities: [{name: a, key: {data: {{P256}}}}, {name: a, key: {data: {{P384}}}}]`,
			repo: "ghcr.io/other",
			want: `ClusterImagePolicy p is invalid: authorities[1]: duplicate name "a"`,
		},
		{
			name: "key with both data and secretRef",
			policy: `kind: ClusterImagePolicy
spec:
  images: [{glob: "**"}]
  authorities: [{name: a, key: {data: {{P256}}, secretRef: {name: s, key: k}}}]`,
			repo: "ghcr.io/other",
			want: `ClusterImagePolicy p is invalid: authority "a": exactly one of key.data or key.secretRef is required, both are set`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := "apiVersion: signgate.dev/v1alpha1\nmetadata: {name: p}\n" + tt.policy
			doc = strings.Replace(doc, "metadata: {name: p}\nkind: ImagePolicy\nmetadata: {namespace: team-a}",
				"kind: ImagePolicy\nmetadata: {name: p, namespace: team-a}", 1)
			trust, _ := compileYAML(t, doc)
			ns := tt.namespace
			if ns == "" {
				ns = "default"
			}
			got := summarize(trust.requirements(ns, tt.labels, imageref.ParseRepo(tt.repo)))
			var want []req
			if tt.want != "" {
				policy, _, _ := strings.Cut(tt.want, " is invalid")
				want = []req{{Policy: policy, Mode: ModeEnforce, Err: tt.want}}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("requirements mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNotReadyFailsClosed(t *testing.T) {
	t.Parallel()
	var s Snapshot = notReady{}
	if _, err := s.Namespace("default"); err == nil {
		t.Error("Namespace: nil error before ready")
	}
	rs := s.Requirements("default", nil, imageref.ParseRepo("quay.io/x"))
	if len(rs) != 1 || rs[0].Err == nil || rs[0].Mode != ModeEnforce {
		t.Errorf("Requirements before ready = %+v, want one enforcing Err", rs)
	}
}

func BenchmarkRequirements(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(basePolicies)
	for i := range 50 { // a realistic cluster: many teams, each with a policy
		fmt.Fprintf(&sb, `
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: team-%[1]d}
spec:
  namespaceSelector: {matchLabels: {team: t%[1]d}}
  images: [{glob: "registry.example.com/team-%[1]d/**"}, {glob: "ghcr.io/team-%[1]d/*"}]
  authorities: [{name: k, key: {data: {{P256}}}}]
---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: ci, namespace: ns-%[1]d}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities: [{name: k, key: {data: {{P256B}}}}]
`, i)
	}
	trust, _ := compileYAML(b, sb.String())
	snap := &snapshot{trust: trust}
	labels := map[string]string{"team": "t7", "kubernetes.io/metadata.name": "ns-7"}
	b.ReportAllocs()
	for b.Loop() {
		rs := snap.Requirements("ns-7", labels, imageref.ParseRepo("registry.example.com/team-7/app"))
		if len(rs) != 3 {
			b.Fatalf("got %d requirements, want 3", len(rs))
		}
	}
}
