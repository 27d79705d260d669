package admission

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
	"sigs.k8s.io/yaml"
)

// env is a complete gate against a real in-memory registry with real
// cosign signatures, policies loaded from files the way --policy-dir does.
type env struct {
	reg      *registrytest.Registry
	gate     *Gate
	verifier *verifier.Verifier
	vars     map[string]string // template variables of the review files
	digests  map[string]string // digest → placeholder, for golden files
}

// Configurations the review table can ask for.
const (
	configDefault       = "default"
	configPinTemplates  = "pin-templates"  // pinning.workloadTemplates: true
	configWorkloadsWarn = "workloads-warn" // podSecurity.workloads: warn
	// configAttested: the ImagePolicies ci also require two attestations
	// with CEL conditions (provenance from the company's builder, a
	// recent scan), which the signed test images carry.
	configAttested = "attested"
)

// testConfig lets the ImagePolicies below cover their images, so that
// team-a's images are judged by team-a's policy alone; nspolicy_test.go
// covers the default, where only ClusterImagePolicies do.
const testConfig = `apiVersion: signgate.dev/v1alpha1
kind: GateConfiguration
exemptNamespaces: [kube-system]
policies: {namespacePoliciesCoverImages: true}
hardening:
  - check: readOnlyRootFilesystem
    mode: enforce
    namespaceSelector: {matchLabels: {env: prod}}
  - check: resourceLimits
    mode: warn
    namespaceSelector: {matchLabels: {env: prod}}
  - check: runtimeClass
    allowed: [gvisor]
    mode: audit
    namespaceSelector: {matchLabels: {env: prod}}
`

var configExtra = map[string]string{
	configDefault:       "",
	configPinTemplates:  "pinning: {workloadTemplates: true}\n",
	configWorkloadsWarn: "podSecurity: {workloads: warn}\n",
	configAttested:      "",
}

// attestedAuthority is the attestations block of the ci authorities with
// configAttested.
const attestedAuthority = `      attestations:
        - name: provenance
          predicateType: slsaprovenance1
          condition: predicate.runDetails.builder.id.startsWith("https://github.com/acme/")
          message: "'built by ' + predicate.runDetails.builder.id"
        - name: scan
          predicateType: vuln
          condition: >-
            now - timestamp(predicate.metadata.scanFinishedOn) < duration("168h") &&
            !predicate.scanner.result.Results.exists(r, has(r.Vulnerabilities) && r.Vulnerabilities.exists(v, v.Severity == "CRITICAL"))
`

// policies are the trust policies and namespaces of every test:
//   - team-a: enforce restricted, ImagePolicy ci (ci-key) on REG/team-a/**
//   - team-warn / team-audit: the same policy in warn / audit mode, as a
//     ClusterImagePolicy ci-warn / ci-audit selecting the namespace (an
//     ImagePolicy is always enforced), Pod Security enforce baseline, warn
//     and audit restricted
//   - prod (env: prod): ci policy and the hardening checks of testConfig
//   - team-broken: ImagePolicy broken on REG/team-a/** with a bad key
//   - everywhere: ClusterImagePolicy public, static pass on REG/public/**
const policies = `apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  labels: {pod-security.kubernetes.io/enforce: restricted}
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-warn
  labels: {pod-security.kubernetes.io/enforce: baseline, pod-security.kubernetes.io/warn: restricted, pod-security.kubernetes.io/audit: restricted}
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-audit
  labels: {pod-security.kubernetes.io/enforce: baseline, pod-security.kubernetes.io/warn: restricted, pod-security.kubernetes.io/audit: restricted}
---
apiVersion: v1
kind: Namespace
metadata:
  name: prod
  labels: {env: prod, pod-security.kubernetes.io/enforce: restricted}
{{range $ns := .Enforced}}---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: ci, namespace: {{$ns}}}
spec:
  images: [{glob: "{{$.Reg}}/team-a/**"}]
  authorities:
    - name: ci-key
      key:
        data: |
{{$.CIKey}}
{{$.Attested}}{{end}}{{range $ns, $mode := .Modes}}---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: ci-{{$mode}}}
spec:
  images: [{glob: "{{$.Reg}}/team-a/**"}]
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: {{$ns}}}}
  mode: {{$mode}}
  authorities:
    - name: ci-key
      key:
        data: |
{{$.CIKey}}
{{end}}---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: broken, namespace: team-broken}
spec:
  images: [{glob: "{{.Reg}}/team-a/**"}]
  authorities:
    - name: bad-key
      key: {data: "not a PEM key"}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: public}
spec:
  images: [{glob: "{{.Reg}}/public/**"}]
  static: {action: pass}
`

// hangGuard bounds what the tests wait for, and is the verifier's
// Timeout: a decision a test asserts never turns undecided because the
// machine is busy. It only turns a hang into a failure; no test asserts
// how long anything took.
const hangGuard = 2 * time.Minute

// newEnv pushes and signs the test images, writes the policies and builds
// the gate with the named configuration.
func newEnv(t testing.TB, config string) *env {
	t.Helper()
	reg := registrytest.New(t)
	ci, other := registrytest.NewSigner(t), registrytest.NewSigner(t)
	signed := reg.PushImage(t, "team-a/app", "v1")
	reg.Sign(t, ci, signed, registrytest.Classic)
	bundle := reg.PushImage(t, "team-a/app", "v2")
	reg.Sign(t, ci, bundle, registrytest.Bundle)
	unsigned := reg.PushImage(t, "team-a/unsigned", "v1")
	wrongKey := reg.PushImage(t, "team-a/wrongkey", "v1")
	reg.Sign(t, other, wrongKey, registrytest.Classic)
	unmatched := reg.PushImage(t, "other/app", "v1")
	public := reg.PushImage(t, "public/base", "v1")
	tools := reg.PushImage(t, "team-a/tools", "v1")
	reg.Sign(t, ci, tools, registrytest.Classic)

	if config == configAttested {
		for _, d := range []name.Digest{signed, bundle, tools} {
			reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1",
				Predicate: map[string]any{"runDetails": map[string]any{"builder": map[string]any{"id": "https://github.com/acme/.github/workflows/build.yml"}}}})
			reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: "https://cosign.sigstore.dev/attestation/vuln/v1",
				Predicate: map[string]any{"metadata": map[string]any{"scanFinishedOn": time.Now().UTC().Format(time.RFC3339)},
					"scanner": map[string]any{"result": map[string]any{"Results": []any{map[string]any{"Target": "app", "Vulnerabilities": []any{map[string]any{"Severity": "HIGH"}}}}}}}})
		}
	}

	dir := t.TempDir()
	var buf bytes.Buffer
	tmpl := template.Must(template.New("policies").Parse(policies))
	indent := "          " + strings.ReplaceAll(strings.TrimSpace(string(ci.PublicPEM)), "\n", "\n          ")
	if err := tmpl.Execute(&buf, map[string]any{
		"Reg": reg.Host, "CIKey": indent,
		"Enforced": []string{"prod", "team-a"},
		"Attested": map[bool]string{true: attestedAuthority}[config == configAttested],
		"Modes":    map[string]string{"team-warn": "warn", "team-audit": "audit"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies.yaml"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := policy.NewFileSource(dir, policy.FileOptions{GateNamespace: "signgate-system"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.ParseConfig([]byte(testConfig + configExtra[config]))
	if err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{Timeout: hangGuard, InsecureRegistries: []string{reg.Host}, AllowedHosts: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGate(Options{Verifier: v, Policies: src, Config: StaticConfig{Config: cfg}, Namespace: "signgate-system"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{reg: reg, gate: g, verifier: v, vars: map[string]string{"Reg": reg.Host}, digests: map[string]string{}}
	for k, d := range map[string]name.Digest{"Signed": signed, "Bundle": bundle, "Unsigned": unsigned, "WrongKey": wrongKey, "Unmatched": unmatched, "Public": public, "Tools": tools} {
		e.vars[k] = d.DigestStr()
		e.digests[d.DigestStr()] = "sha256:" + strings.ToUpper(k)
	}
	reg.ResetRequests()
	return e
}

// review reads testdata/reviews/<name>.yaml, fills in the registry and
// digests, and returns the AdmissionReview as JSON.
func (e *env) review(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "reviews", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := template.Must(template.New(name).Option("missingkey=error").Parse(string(raw))).Execute(&buf, e.vars); err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(buf.Bytes())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return js
}

// post sends body to the handler of webhook w through HTTP and decodes
// the response review.
func (e *env) post(t testing.TB, w Webhook, body []byte, query string) *admissionv1.AdmissionResponse {
	t.Helper()
	return e.postWith(t, w, body, query, HandlerOptions{})
}

// postWith is post through a handler with opts (a logger, metrics).
func (e *env) postWith(t testing.TB, w Webhook, body []byte, query string, opts HandlerOptions) *admissionv1.AdmissionResponse {
	t.Helper()
	h := NewHandler(e.gate, w, opts)
	req := httptest.NewRequest(http.MethodPost, "/"+string(w)+query, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil {
		t.Fatal("no response in review")
	}
	return out.Response
}

// normalize replaces the registry host and digests with stable names.
func (e *env) normalize(s string) string {
	s = strings.ReplaceAll(s, e.reg.Host, "REGISTRY")
	for d, p := range e.digests {
		s = strings.ReplaceAll(s, d, p)
	}
	return s
}
