package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
)

// metricsGolden is the list of metric families the gate exposes, which
// the chart's dashboard and alerts are checked against.
const metricsGolden = "../../internal/server/testdata/metrics.golden"

// recordedReview is an AdmissionReview recorded from a real API server
// (e2e/load/testdata, see its README), its placeholders filled in as
// e2e/load/reviews.go does.
func recordedReview(t *testing.T, uid, namespace string, images []string) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("../../e2e/load/testdata/review-pod-%d-containers.json", len(images)))
	if err != nil {
		t.Fatal(err)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	pairs := []string{q("{{UID}}"), q(uid), q("{{NAMESPACE}}"), q(namespace)}
	for i, img := range images {
		pairs = append(pairs, q(fmt.Sprintf("{{IMAGE_%d}}", i)), q(img))
	}
	body := strings.NewReplacer(pairs...).Replace(string(raw))
	if strings.Contains(body, `"{{`) {
		t.Fatalf("placeholder left in the recorded review")
	}
	return body
}

// goldenFamily is one line of metrics.golden: NAME TYPE [condition].
type goldenFamily struct{ typ, condition string }

func readMetricsGolden(t *testing.T) map[string]goldenFamily {
	t.Helper()
	data, err := os.ReadFile(metricsGolden)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]goldenFamily{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 {
			t.Fatalf("%s:%d: %q: want NAME TYPE [condition]", metricsGolden, i+1, line)
		}
		g := goldenFamily{typ: f[1]}
		if len(f) == 3 {
			g.condition = f[2]
		}
		out[f[0]] = g
	}
	return out
}

// scrapedTypes are the families of a Prometheus text exposition, by their
// # TYPE lines.
func scrapedTypes(t *testing.T, exposition string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}

// TestMetricsScrape: a running server, after a recorded AdmissionReview
// (an image verified on a registry twice, one denied by a static policy),
// exposes on /metrics every family of metrics.golden that is not
// conditional, with its type, and no signgate_* family the golden does
// not list.
func TestMetricsScrape(t *testing.T) {
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team-a/app", "v1")
	signer := registrytest.NewSigner(t)
	reg.Sign(t, signer, d, registrytest.Classic)

	dir := t.TempDir()
	o := testOptions(t, dir)
	key := "          " + strings.ReplaceAll(strings.TrimSpace(string(signer.PublicPEM)), "\n", "\n          ")
	pols := "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: signed}\nspec:\n  images: [{glob: \"" + reg.Host + "/team-a/**\"}]\n" +
		"  authorities:\n    - name: ci-key\n      key:\n        data: |\n" + key + "\n" +
		"---\napiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: blocked}\nspec: {images: [{glob: \"registry.example.com/blocked/**\"}], static: {action: fail}}\n" +
		"---\napiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: invalid}\nspec: {images: [{glob: \"registry.example.com/invalid/**\"}], static: {action: maybe}}\n"
	if err := os.WriteFile(filepath.Join(o.PolicyDir, "policies.yaml"), []byte(pols), 0o600); err != nil {
		t.Fatal(err)
	}
	o.ConfigFile = filepath.Join(dir, "config.yaml")
	cfg := "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n" +
		"registry: {insecureRegistries: [\"" + reg.Host + "\"], allowedHosts: [\"" + reg.Host + "\"], timeout: 20s}\n"
	if err := os.WriteFile(o.ConfigFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o.Version = "v9.9.9-test"
	s, _ := startServer(t, o)

	review := recordedReview(t, "0b4c9c7e-metrics", "team-a", []string{d.String(), d.String(), "registry.example.com/blocked/app@" + d.DigestStr()})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test's own self-signed certificate
	resp, err := client.Post("https://"+s.WebhookAddr().String()+"/validate?timeout=10s", "application/json", strings.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /validate = %d %s", resp.StatusCode, body)
	}
	var answer struct {
		Response struct {
			Allowed bool `json:"allowed"`
			Status  struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatal(err)
	}
	if answer.Response.Allowed || !strings.Contains(answer.Response.Status.Message, "registry.example.com/blocked/app") ||
		strings.Contains(answer.Response.Status.Message, "team-a/app") {
		t.Fatalf("want only the blocked image denied: %s", body)
	}

	code, m := get(t, "http://"+s.MetricsAddr().String()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	golden, scraped := readMetricsGolden(t), scrapedTypes(t, m)
	for name, g := range golden {
		typ, ok := scraped[name]
		switch {
		case g.condition != "" && ok:
			t.Errorf("%s is scraped, but metrics.golden registers it only with %s", name, g.condition)
		case g.condition != "":
		case !ok:
			t.Errorf("%s (%s) is in metrics.golden but not scraped", name, g.typ)
		case typ != g.typ:
			t.Errorf("%s is a %s, metrics.golden says %s", name, typ, g.typ)
		}
	}
	for name := range scraped {
		if _, ok := golden[name]; strings.HasPrefix(name, "signgate_") && !ok {
			t.Errorf("%s is scraped but not in metrics.golden", name)
		}
	}

	// The values of the new families.
	for _, want := range []string{
		`signgate_policies{kind="ClusterImagePolicy",state="ready"} 2`,
		`signgate_policies{kind="ClusterImagePolicy",state="invalid"} 1`,
		`signgate_policies{kind="ImagePolicy",state="ready"} 0`,
		`signgate_policies{kind="TrustRoot",state="invalid"} 0`,
		`signgate_admission_duration_seconds_bucket{webhook="validate",le="30"} 1`,
		`certificate="serving"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if re := regexp.MustCompile(`signgate_build_info\{goversion="go[^"]+",revision="[^"]+",version="v9\.9\.9-test"\} 1`); !re.MatchString(m) {
		t.Errorf("no signgate_build_info with version v9.9.9-test:\n%s", grepLines(m, "signgate_build_info"))
	}
	// The registry's host is named by a glob: it labels its requests.
	if want := `signgate_registry_request_duration_seconds_count{operation="manifest",registry="` + reg.Host + `"}`; !strings.Contains(m, want) {
		t.Errorf("scrape lacks %s:\n%s", want, grepLines(m, "signgate_registry_request_duration_seconds_count"))
	}
	if strings.Contains(m, `certificate="client_ca"`) {
		t.Error("client_ca expiry without --client-ca-file")
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
