package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/pflag"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/check/golden")

// checkEnv is an in-memory registry with signed and unsigned images, a
// policy directory trusting team a's key for its images in namespace
// team-a, and copies of the manifests in testdata/check with REGISTRY
// replaced by the registry's host.
//
//	REGISTRY/team-a/web:1.0       signed with team a's key
//	REGISTRY/team-a/unsigned:1.0  not signed
//	REGISTRY/infra/pause:3.10     not signed; static pass for every namespace
//	REGISTRY/team-a/forged:1.0    signed with a key nobody trusts
type checkEnv struct {
	reg       *registrytest.Registry
	dir       string            // copy of testdata/check
	policies  string            // dir + "/policies"
	replacer  *strings.Replacer // makes output independent of host, digests and temp dir
	expand    *strings.Replacer // REGISTRY and DIGEST<repo> → this registry's values
	teamKey   *registrytest.Signer
	digestsOf map[string]name.Digest
}

func newCheckEnv(t *testing.T) *checkEnv {
	t.Helper()
	e := &checkEnv{reg: registrytest.New(t), dir: t.TempDir(), teamKey: registrytest.NewSigner(t), digestsOf: map[string]name.Digest{}}
	e.digestsOf["team-a/web"] = e.reg.PushImage(t, "team-a/web", "1.0")
	e.digestsOf["team-a/unsigned"] = e.reg.PushImage(t, "team-a/unsigned", "1.0")
	e.digestsOf["infra/pause"] = e.reg.PushImage(t, "infra/pause", "3.10")
	e.digestsOf["team-a/forged"] = e.reg.PushImage(t, "team-a/forged", "1.0")
	e.reg.Sign(t, e.teamKey, e.digestsOf["team-a/web"], registrytest.Classic)
	e.reg.Sign(t, registrytest.NewSigner(t), e.digestsOf["team-a/forged"], registrytest.Classic)
	e.reg.ResetRequests()

	key := "          " + strings.ReplaceAll(strings.TrimSpace(string(e.teamKey.PublicPEM)), "\n", "\n          ")
	in := strings.NewReplacer("REGISTRY", e.reg.Host, "TEAM_KEY", key)
	e.copyTree(t, "testdata/check", in)
	e.policies = filepath.Join(e.dir, "policies")

	out := []string{e.dir, "testdata/check", e.reg.Host, "REGISTRY"}
	expand := []string{"REGISTRY", e.reg.Host}
	for repo, d := range e.digestsOf {
		out = append(out, d.DigestStr(), "sha256:<"+repo+">")
		expand = append(expand, "DIGEST<"+repo+">", d.DigestStr())
	}
	e.expand = strings.NewReplacer(expand...)
	e.replacer = strings.NewReplacer(out...)
	return e
}

// copyTree copies the manifests and policies of src (not the goldens).
func (e *checkEnv) copyTree(t *testing.T, src string, r *strings.Replacer) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel == "golden" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(e.dir, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(e.dir, rel), []byte(r.Replace(string(data))), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// path is a file or directory of the copied testdata.
func (e *checkEnv) path(rel string) string { return filepath.Join(e.dir, rel) }

// check runs `signgate check` with the registry flags and the policy dir.
func (e *checkEnv) check(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	args = append([]string{"check", "--policy-dir", e.policies, "--insecure-registry", e.reg.Host, "--allow-host", e.reg.Host}, args...)
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, e.replacer.Replace(out.String()), e.replacer.Replace(errOut.String())
}

// parseCheckFlags parses and validates check's flags as the command does.
func parseCheckFlags(args []string) (checkOptions, error) {
	var o checkFlags
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return checkOptions{}, err
	}
	return o.options()
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata/check/golden", file)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Check -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// TestCheckGolden runs whole check invocations and compares the output
// word for word: text and JSON, the exit code, online and --offline.
func TestCheckGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string // after the registry and policy flags; paths relative to the testdata copy
		fault    registrytest.Fault
		wantCode int
	}{
		// Pods, a Deployment, a CronJob and a ConfigMap in one directory.
		{name: "mixed.txt", args: []string{"-f", "mixed"}, wantCode: exitDenied},
		{name: "mixed.json", args: []string{"-f", "mixed", "-o", "json"}, wantCode: exitDenied},
		{name: "admitted.txt", args: []string{"-f", "single/web.yaml"}, wantCode: exitOK},
		{name: "admitted.json", args: []string{"-f", "single/web.yaml", "-o", "json"}, wantCode: exitOK},
		// No registry at all: Pod Security still denies root-shell.
		{name: "offline.txt", args: []string{"-f", "mixed", "--offline"}, wantCode: exitDenied},
		{name: "offline.json", args: []string{"-f", "mixed", "-o", "json", "--offline"}, wantCode: exitDenied},
		{name: "offline-admitted.txt", args: []string{"-f", "single/web.yaml", "--offline"}, wantCode: exitOK},
		// A configuration: templates pinned, hardening enforced and warned.
		{name: "config.txt", args: []string{"-f", "mixed", "--config", "config/prod.yaml"}, wantCode: exitDenied},
		// The registry answers 503: nothing is denied, the answer is unknown.
		// The Deployment's template is resolved and verified in /validate.
		{name: "undecided.txt", args: []string{"-f", "single/deployment.yaml"}, fault: registrytest.FailN(503, -1), wantCode: exitUndecided},
		{name: "undecided.json", args: []string{"-f", "single/deployment.yaml", "-o", "json"}, fault: registrytest.FailN(503, -1), wantCode: exitUndecided},
		// A pod whose tag cannot be resolved stays unpinned; /validate
		// cannot resolve it either: undecided, retry.
		{name: "pod-registry-down.txt", args: []string{"-f", "single/web.yaml"}, fault: registrytest.FailN(503, -1), wantCode: exitUndecided},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newCheckEnv(t)
			e.reg.SetFault(tt.fault)
			args := append([]string(nil), tt.args...)
			for i := range args {
				if i > 0 && (args[i-1] == "-f" || args[i-1] == "--config") {
					args[i] = e.path(args[i])
				}
			}
			code, stdout, stderr := e.check(t, args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr:\n%s", stderr)
			}
			if strings.HasSuffix(tt.name, ".json") {
				var r report
				if err := json.Unmarshal([]byte(stdout), &r); err != nil {
					t.Errorf("output is not a report: %v", err)
				}
				for _, o := range r.Objects {
					checkFindingsAreLines(t, o)
				}
			}
			golden(t, tt.name, stdout)
		})
	}
}

// TestCheckOfflineNoRegistryIO: --offline makes no registry request.
func TestCheckOfflineNoRegistryIO(t *testing.T) {
	t.Parallel()
	e := newCheckEnv(t)
	e.check(t, "-f", e.path("mixed"), "--offline")
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("offline check made %d registry requests: %v", n, e.reg.RequestLog())
	}
}

// TestCheckErrors: usage, input and configuration errors exit 2 with a
// message on stderr (file and line for bad YAML) and nothing on stdout.
func TestCheckErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantStderr string // substring
	}{
		{"no -f", []string{}, "-f is required"},
		{"bad output", []string{"-f", "single/web.yaml", "-o", "yaml"}, `-o "yaml": want text or json`},
		{"bad namespace", []string{"-f", "single/web.yaml", "--namespace", "Team_A"}, `--namespace "Team_A"`},
		{"bad label", []string{"-f", "single/web.yaml", "--namespace-labels", "a=b=c"}, "--namespace-labels"},
		{"stray argument", []string{"-f", "single/web.yaml", "extra"}, `unexpected argument "extra"`},
		{"bad YAML with its line", []string{"-f", "bad"}, "signgate check: testdata/check/bad/broken.yaml:12: invalid YAML: did not find expected '-' indicator\n"},
		{"missing file", []string{"-f", "nope.yaml"}, "signgate check: testdata/check/nope.yaml: no such file or directory\n"},
		{"bad config", []string{"-f", "single/web.yaml", "--config", "policies/team-a.yaml"}, "signgate check: testdata/check/policies/team-a.yaml: parse GateConfiguration"},
		{"unknown flag", []string{"-f", "single/web.yaml", "--frobnicate"}, "signgate check: unknown flag: --frobnicate\nRun 'signgate check --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newCheckEnv(t)
			args := append([]string(nil), tt.args...)
			for i := range args {
				if i > 0 && (args[i-1] == "-f" || args[i-1] == "--config") {
					args[i] = e.path(args[i])
				}
			}
			code, stdout, stderr := e.check(t, args...)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

// TestCheckStdinAndNamespaces: "-" reads stdin; --namespace applies to
// objects without one; --namespace-labels override the policy dir's.
func TestCheckStdinAndNamespaces(t *testing.T) {
	t.Parallel()
	e := newCheckEnv(t)
	pod := strings.ReplaceAll(`apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers:
    - name: web
      image: REGISTRY/team-a/web:1.0
`, "REGISTRY", e.reg.Host)
	tests := []struct {
		name         string
		args         []string
		wantDecision decision
		wantNS       string
	}{
		// restricted (team-a's label) denies the pod's missing securityContext.
		{"namespace from flag", []string{"--namespace", "team-a"}, denied, "team-a"},
		// privileged through --namespace-labels: only the signature counts.
		{"labels override", []string{"--namespace", "team-a", "--namespace-labels", "pod-security.kubernetes.io/enforce=privileged"}, admitted, "team-a"},
		// default has no policy for team-a's images: unmatchedImages denies.
		{"default namespace", nil, denied, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts, err := parseCheckFlags(append([]string{"-f", "-", "-o", "json", "--policy-dir", e.policies, "--insecure-registry", e.reg.Host, "--allow-host", e.reg.Host}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			runCheck(context.Background(), opts, newCheckGate, strings.NewReader(pod), &out, &errOut, false)
			var r report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("%v; stderr: %s", err, errOut.String())
			}
			if len(r.Objects) != 1 {
				t.Fatalf("objects = %d, want 1", len(r.Objects))
			}
			o := r.Objects[0]
			if o.Decision != tt.wantDecision || o.Namespace != tt.wantNS || o.Source != (source{File: stdinName, Line: 1}) {
				t.Errorf("got %s in %s at %s (%q), want %s in %s at <stdin>:1", o.Decision, o.Namespace, o.Source, o.Messages, tt.wantDecision, tt.wantNS)
			}
		})
	}
}

func TestCheckUseColor(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if useColor(f, env(nil)) {
		t.Error("a regular file got colors")
	}
	if useColor(&bytes.Buffer{}, env(nil)) {
		t.Error("a buffer got colors")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !useColor(tty, env(nil)) {
			t.Error("a terminal got no colors")
		}
		if useColor(tty, env(map[string]string{"NO_COLOR": "1"})) {
			t.Error("NO_COLOR was ignored")
		}
	}
}

// restrictedPod is a pod spec body that passes Pod Security restricted,
// indented for a Pod's spec.
const restrictedPod = `  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: app
      image: IMAGE
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
`

// podSpec returns restrictedPod with image, for a spec: key indented by
// indent spaces.
func podSpec(image string, indent int) string {
	pad := strings.Repeat(" ", indent)
	return pad + strings.ReplaceAll(strings.TrimRight(strings.ReplaceAll(restrictedPod, "IMAGE", image), "\n"), "\n", "\n"+pad) + "\n"
}

func podYAML(name, image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n" + podSpec(image, 0)
}

func templateYAML(apiVersion, kind, name, image string) string {
	return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata: {name: " + name + "}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n" + podSpec(image, 4)
}

// TestCheckSameAsWebhook is the one table proving that `signgate check`
// and the webhooks (admission's HTTP handlers, called the way the API
// server calls them: /mutate, patch applied, /validate) give every manifest
// the same decision, messages and warnings.
func TestCheckSameAsWebhook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		manifest  string // REGISTRY and DIGEST<repo> are replaced
		namespace string
		fault     registrytest.Fault
		want      decision
	}{
		{name: "signed pod", manifest: podYAML("web", "REGISTRY/team-a/web:1.0"), namespace: "team-a", want: admitted},
		{name: "signed pod by digest", manifest: podYAML("web", "REGISTRY/team-a/web@DIGEST<team-a/web>"), namespace: "team-a", want: admitted},
		{name: "tag and digest", manifest: podYAML("web", "REGISTRY/team-a/web:1.0@DIGEST<team-a/web>"), namespace: "team-a", want: admitted},
		{name: "unsigned pod", manifest: podYAML("web", "REGISTRY/team-a/unsigned:1.0"), namespace: "team-a", want: denied},
		{name: "signed by an untrusted key", manifest: podYAML("web", "REGISTRY/team-a/forged:1.0"), namespace: "team-a", want: denied},
		{name: "no policy in the namespace", manifest: podYAML("web", "REGISTRY/team-a/web:1.0"), namespace: "default", want: denied},
		{name: "static pass", manifest: podYAML("pause", "REGISTRY/infra/pause:3.10"), namespace: "default", want: admitted},
		{name: "missing image", manifest: podYAML("web", "REGISTRY/team-a/web:9.9"), namespace: "team-a", want: denied},
		{name: "privileged", manifest: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: app, image: REGISTRY/team-a/web:1.0, securityContext: {privileged: true}}\n", namespace: "team-a", want: denied},
		{name: "signed deployment", manifest: templateYAML("apps/v1", "Deployment", "d", "REGISTRY/team-a/web:1.0"), namespace: "team-a", want: admitted},
		{name: "unsigned statefulset", manifest: templateYAML("apps/v1", "StatefulSet", "s", "REGISTRY/team-a/unsigned:1.0"), namespace: "team-a", want: denied},
		{name: "daemonset", manifest: templateYAML("apps/v1", "DaemonSet", "ds", "REGISTRY/team-a/web:1.0"), namespace: "team-a", want: admitted},
		{name: "replicaset", manifest: templateYAML("apps/v1", "ReplicaSet", "rs", "REGISTRY/team-a/forged:1.0"), namespace: "team-a", want: denied},
		{name: "replicationcontroller", manifest: templateYAML("v1", "ReplicationController", "rc", "REGISTRY/team-a/web:1.0"), namespace: "team-a", want: admitted},
		{name: "job", manifest: "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n" + podSpec("REGISTRY/team-a/web:1.0", 4), namespace: "team-a", want: admitted},
		{name: "unsigned cronjob", manifest: "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n" + podSpec("REGISTRY/team-a/unsigned:1.0", 8), namespace: "team-a", want: denied},
		{name: "podtemplate", manifest: "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: pt}\ntemplate:\n  spec:\n" + podSpec("REGISTRY/team-a/web:1.0", 2), namespace: "team-a", want: admitted},
		{name: "registry down, deployment", manifest: templateYAML("apps/v1", "Deployment", "d", "REGISTRY/team-a/web:1.0"), namespace: "team-a", fault: registrytest.FailN(503, -1), want: undecided},
		{name: "registry down, pod", manifest: podYAML("web", "REGISTRY/team-a/web:1.0"), namespace: "team-a", fault: registrytest.FailN(503, -1), want: undecided},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newCheckEnv(t)
			e.reg.SetFault(tt.fault)
			manifest := e.expand.Replace(tt.manifest)

			viaCheck := e.checkOne(t, manifest, tt.namespace)
			viaWebhook := e.webhookOne(t, manifest, tt.namespace)

			if viaCheck.Decision != tt.want {
				t.Errorf("check: %s %q, want %s", viaCheck.Decision, viaCheck.Messages, tt.want)
			}
			if diff := cmp.Diff(viaWebhook, viaCheck); diff != "" {
				t.Errorf("check and webhook differ (-webhook +check):\n%s", diff)
			}
		})
	}
}

// outcome is what both paths are compared on.
type outcome struct {
	Decision decision
	Messages []string
	Warnings []string
}

func (e *checkEnv) checkOne(t *testing.T, manifest, namespace string) outcome {
	t.Helper()
	file := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(file, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := e.check(t, "-f", file, "-n", namespace, "-o", "json")
	var r report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || len(r.Objects) != 1 {
		t.Fatalf("check exit %d, objects %v, err %v; stderr:\n%s", code, r.Objects, err, stderr)
	}
	o := r.Objects[0]
	return outcome{Decision: o.Decision, Messages: o.Messages, Warnings: o.Warnings}
}

// webhookOne sends the manifest through admission's HTTP handlers like the
// API server: an AdmissionReview to /mutate, the JSON patch applied, the
// patched object to /validate. Warnings of both are shown to the client.
func (e *checkEnv) webhookOne(t *testing.T, manifest, namespace string) outcome {
	t.Helper()
	v, err := verifier.New(verifier.Options{InsecureRegistries: []string{e.reg.Host}, AllowedHosts: []string{e.reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := policy.NewFileSource(e.policies, policy.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := admission.NewGate(admission.Options{Verifier: v, Policies: src})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admission.NewMux(gate, admission.HandlerOptions{}))
	defer srv.Close()

	js, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		t.Fatal(err)
	}
	obj["metadata"].(map[string]any)["namespace"] = namespace
	gvk := schema.FromAPIVersionAndKind(obj["apiVersion"].(string), obj["kind"].(string))
	resource := strings.ToLower(gvk.Kind) + "s"
	raw, _ := json.Marshal(obj)

	mres := postReview(t, srv.URL+"/mutate?timeout=10s", gvk, resource, namespace, raw)
	warnings := append([]string{}, mres.Warnings...)
	if len(mres.Patch) > 0 {
		p, err := jsonpatch.DecodePatch(mres.Patch)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = p.Apply(raw); err != nil {
			t.Fatal(err)
		}
	}
	vres := postReview(t, srv.URL+"/validate?timeout=10s", gvk, resource, namespace, raw)
	for _, w := range vres.Warnings {
		if !slices.Contains(warnings, w) {
			warnings = append(warnings, w)
		}
	}
	out := outcome{Decision: admitted, Messages: []string{}, Warnings: []string{}}
	for _, w := range warnings {
		out.Warnings = append(out.Warnings, e.replacer.Replace(w))
	}
	if !vres.Allowed {
		out.Decision = denied
		if vres.Result.Code == http.StatusServiceUnavailable {
			out.Decision = undecided
		}
		for _, l := range strings.Split(vres.Result.Message, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out.Messages = append(out.Messages, e.replacer.Replace(l))
			}
		}
	}
	return out
}

func postReview(t *testing.T, url string, gvk schema.GroupVersionKind, resource, namespace string, obj []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "4b1f2c3d-0000-4000-8000-000000000001",
			Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
			Namespace: namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: obj},
		},
	}
	body, _ := json.Marshal(review)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("POST %s: decode: %v", url, err)
	}
	return out.Response
}

// TestCheckOffline pins down what --offline decides: everything the gate
// decides without a registry, and for images only what needs no registry.
// No result may rest on a signature.
func TestCheckOffline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		manifest     string
		namespace    string
		want         decision
		wantWarnings []string
		wantMessages []string
	}{
		{
			name:         "pinned pod: signature not checked",
			manifest:     podYAML("web", "REGISTRY/team-a/web@DIGEST<team-a/web>"),
			namespace:    "team-a",
			want:         admitted,
			wantWarnings: []string{`spec.containers[0].image "REGISTRY/team-a/web@sha256:<team-a/web>": signature not checked against ClusterImagePolicy team-a-ci (offline)`},
			wantMessages: []string{},
		},
		{
			name:      "tag in a pod: not pinned, signature not checked",
			manifest:  podYAML("web", "REGISTRY/team-a/unsigned:1.0"),
			namespace: "team-a",
			want:      admitted,
			wantWarnings: []string{
				`spec.containers[0].image "REGISTRY/team-a/unsigned:1.0": not pinned by digest (offline: not resolved)`,
				`spec.containers[0].image "REGISTRY/team-a/unsigned:1.0": signature not checked against ClusterImagePolicy team-a-ci (offline)`,
			},
			wantMessages: []string{},
		},
		{
			name:         "static pass needs no registry",
			manifest:     podYAML("pause", "REGISTRY/infra/pause@DIGEST<infra/pause>"),
			namespace:    "default",
			want:         admitted,
			wantWarnings: []string{},
			wantMessages: []string{},
		},
		{
			name:         "unmatched image in a template is denied offline too",
			manifest:     templateYAML("apps/v1", "Deployment", "d", "REGISTRY/team-a/web:1.0"),
			namespace:    "default",
			want:         denied,
			wantWarnings: []string{}, // templates are not pinned (pinning.workloadTemplates is off)
			wantMessages: []string{`spec.template.spec.containers[0].image "REGISTRY/team-a/web:1.0": no ClusterImagePolicy or ImagePolicy in namespace default covers REGISTRY/team-a/web; add a policy for it or use an image one covers`},
		},
		{
			name:         "unmatched tag in a pod is denied offline too",
			manifest:     podYAML("web", "REGISTRY/team-a/web:1.0"),
			namespace:    "default",
			want:         denied,
			wantWarnings: []string{`spec.containers[0].image "REGISTRY/team-a/web:1.0": not pinned by digest (offline: not resolved)`},
			wantMessages: []string{`spec.containers[0].image "REGISTRY/team-a/web:1.0": no ClusterImagePolicy or ImagePolicy in namespace default covers REGISTRY/team-a/web; add a policy for it or use an image one covers`},
		},
		{
			name:         "empty image",
			manifest:     podYAML("web", `""`),
			namespace:    "team-a",
			want:         denied,
			wantWarnings: []string{}, // nothing to pin
			wantMessages: []string{"spec.containers[0].image: image is empty; set an image reference"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newCheckEnv(t)
			file := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(file, []byte(e.expand.Replace(tt.manifest)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, stdout, stderr := e.check(t, "-f", file, "-n", tt.namespace, "-o", "json", "--offline")
			var r report
			if err := json.Unmarshal([]byte(stdout), &r); err != nil || len(r.Objects) != 1 {
				t.Fatalf("objects %v, err %v; stderr:\n%s", r.Objects, err, stderr)
			}
			o := r.Objects[0]
			got := outcome{o.Decision, o.Messages, o.Warnings}
			if diff := cmp.Diff(outcome{tt.want, tt.wantMessages, tt.wantWarnings}, got); diff != "" {
				t.Errorf("offline result (-want +got):\n%s", diff)
			}
			if n := e.reg.Requests(); n != 0 {
				t.Errorf("offline made %d registry requests", n)
			}
		})
	}
}

// TestCheckOfflineSamePodAndWorkload: offline, a bare Pod and a
// Deployment with the same image get the same decision, messages and
// "signature not checked" notes (under their own field paths); the Pod
// also gets the note that the mutating webhook would have pinned it.
func TestCheckOfflineSamePodAndWorkload(t *testing.T) {
	t.Parallel()
	images := []string{
		"REGISTRY/team-a/web:1.0",                    // covered in team-a, not in default
		"REGISTRY/team-a/web@DIGEST<team-a/web>",     // the same, by digest
		"REGISTRY/infra/pause:3.10",                  // static pass everywhere
		"REGISTRY/team-a/unsigned:1.0",               // covered, never verified offline
		"REGISTRY/team-a/web:1.0@DIGEST<team-a/web>", // tag and digest
	}
	for _, image := range images {
		for _, ns := range []string{"team-a", "default"} {
			t.Run(image+" in "+ns, func(t *testing.T) {
				t.Parallel()
				e := newCheckEnv(t)
				answer := func(manifest, prefix string) outcome {
					file := filepath.Join(t.TempDir(), "m.yaml")
					if err := os.WriteFile(file, []byte(e.expand.Replace(manifest)), 0o644); err != nil {
						t.Fatal(err)
					}
					_, stdout, stderr := e.check(t, "-f", file, "-n", ns, "-o", "json", "--offline")
					var r report
					if err := json.Unmarshal([]byte(stdout), &r); err != nil || len(r.Objects) != 1 {
						t.Fatalf("objects %v, err %v; stderr:\n%s", r.Objects, err, stderr)
					}
					o := r.Objects[0]
					out := outcome{Decision: o.Decision, Messages: []string{}, Warnings: []string{}}
					for _, m := range o.Messages {
						out.Messages = append(out.Messages, strings.TrimPrefix(m, prefix))
					}
					for _, f := range o.Findings {
						if f.Code != string(admission.CodeOfflineNotPinned) {
							out.Warnings = append(out.Warnings, strings.TrimPrefix(f.Message, prefix))
						}
					}
					return out
				}
				pod := answer(podYAML("web", image), "spec.")
				deployment := answer(templateYAML("apps/v1", "Deployment", "web", image), "spec.template.spec.")
				if diff := cmp.Diff(pod, deployment); diff != "" {
					t.Errorf("Pod and Deployment differ offline (-pod +deployment):\n%s", diff)
				}
			})
		}
	}
}

// TestCheckEmptyInput: input without any object is a usage error, never a
// pass: a CI job whose -f points at the wrong place must fail.
func TestCheckEmptyInput(t *testing.T) {
	t.Parallel()
	e := newCheckEnv(t)
	emptyDir := t.TempDir()
	emptyFile := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(emptyFile, []byte("---\n# nothing yet\n---\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{emptyDir, emptyFile} {
		code, stdout, stderr := e.check(t, "-f", f)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "no objects in -f "+f+": nothing to check") {
			t.Errorf("-f %s: exit %d, stdout %q, stderr %q; want exit %d and \"no objects\"", f, code, stdout, stderr, exitUsage)
		}
	}
	var out, errOut bytes.Buffer
	code := runCheck(context.Background(), checkOptions{Files: []string{"-"}, Namespace: "default", Output: "text"}, newCheckGate, strings.NewReader(""), &out, &errOut, false)
	if code != exitUsage || !strings.Contains(errOut.String(), "no objects in -f -") {
		t.Errorf("empty stdin: exit %d, stderr %q", code, errOut.String())
	}
}

// TestCheckExitCode: a denial wins over undecided, undecided over admitted.
func TestCheckExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		decisions []decision
		want      int
	}{
		{"nothing checked", nil, exitOK},
		{"all admitted", []decision{admitted, admitted}, exitOK},
		{"one denied", []decision{admitted, denied}, exitDenied},
		{"undecided", []decision{admitted, undecided}, exitUndecided},
		{"denied and undecided", []decision{undecided, denied, admitted}, exitDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newReport(false)
			for _, d := range tt.decisions {
				r.add(objectResult{Decision: d})
			}
			r.skip(skippedObject{Kind: "ConfigMap"})
			if got := r.exitCode(); got != tt.want {
				t.Errorf("exitCode() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestCheckGuardRefusal: a registry the network guard refuses is a
// configuration problem: check reports the objects, says on stderr which
// registry the guard blocked and how to allow it, and exits 2. The remedy
// is --allow-host without --config, registry.allowedHosts with it.
func TestCheckGuardRefusal(t *testing.T) {
	t.Parallel()
	e := newCheckEnv(t)
	for _, tc := range []struct {
		name   string
		args   []string
		remedy string
	}{
		{"flags", nil, "pass --allow-host " + e.reg.Host},
		{"config", []string{"--config", e.path("config/prod.yaml")}, "list it in registry.allowedHosts if it is trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := "registry " + e.reg.Host + " is blocked by the network guard (loopback); " + tc.remedy
			args := append([]string{"check", "--policy-dir", e.policies, "--insecure-registry", e.reg.Host, "-f", e.path("single/web.yaml")}, tc.args...)
			var out, errOut bytes.Buffer
			code := run(context.Background(), args, &out, &errOut)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitUsage, &out, &errOut)
			}
			if !strings.Contains(errOut.String(), "signgate check: "+want+"\n") {
				t.Errorf("stderr does not say %q:\n%s", want, &errOut)
			}
			if !strings.Contains(out.String(), want) {
				t.Errorf("the report does not say %q:\n%s", want, &out)
			}
		})
	}
}
