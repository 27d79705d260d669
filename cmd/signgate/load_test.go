package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/internal/registrytest"
)

// This file drives `signgate serve` with concurrent AdmissionReviews for
// the lifecycle and soak tests: every answer is checked against what the
// review expects, so "zero errors" means zero transport errors, zero
// unexpected HTTP statuses and zero wrong decisions.

// reviewCase is one kind of request the load sends.
type reviewCase struct {
	name string
	path string // "/validate?timeout=10s", "/mutate", ...
	body []byte
	// status is the expected HTTP status (0: 200).
	status int
	// check judges a 200 answer; nil accepts any well-formed answer.
	check func(r *admissionv1.AdmissionResponse) error
}

// loadStats counts what the load saw. Safe for concurrent use.
type loadStats struct {
	sent, answered atomic.Int64
	mu             sync.Mutex
	failures       []string // the first few, for the test log
	failed         int64
	byCase         map[string]int64
}

func (s *loadStats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed++
	if len(s.failures) < 10 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

func (s *loadStats) count(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byCase == nil {
		s.byCase = map[string]int64{}
	}
	s.byCase[name]++
}

// Failed returns how many requests failed and the first failures.
func (s *loadStats) Failed() (int64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed, append([]string(nil), s.failures...)
}

// requireNoFailures fails t when any request failed.
func (s *loadStats) requireNoFailures(t *testing.T) {
	t.Helper()
	n, first := s.Failed()
	if n > 0 {
		t.Errorf("%d of %d requests failed; first: %s", n, s.sent.Load(), strings.Join(first, "\n  "))
	}
}

// loadClient is an HTTPS client for the gate that keeps up to n
// connections alive, like the API server's webhook client.
func loadClient(n int) (*http.Client, *http.Transport) {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // self-signed test certificate
		MaxIdleConnsPerHost: n,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, tr
}

// send posts one review and judges the answer. It returns the response
// (nil unless 200 and well-formed) and whether the request failed.
func send(ctx context.Context, client *http.Client, base string, c reviewCase) (*admissionv1.AdmissionResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+c.path, bytes.NewReader(c.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	want := c.status
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("HTTP %d, want %d: %.200s", resp.StatusCode, want, body)
	}
	if want != http.StatusOK {
		return nil, nil
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("answer is not an AdmissionReview: %w: %.200s", err, body)
	}
	if review.Response == nil || review.Response.UID == "" {
		return nil, fmt.Errorf("answer without response/uid: %.200s", body)
	}
	if c.check != nil {
		if err := c.check(review.Response); err != nil {
			return review.Response, err
		}
	}
	return review.Response, nil
}

// runLoad sends reviews from workers goroutines until ctx ends; worker w
// sends pick(w, i) as its i-th request. Requests cut short by ctx's end
// are not counted. It returns once every worker has stopped.
func runLoad(ctx context.Context, client *http.Client, base string, workers int, pick func(w, i int) reviewCase, stats *loadStats) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				c := pick(w, i)
				stats.sent.Add(1)
				_, err := send(ctx, client, base, c)
				if err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
					stats.sent.Add(-1)
					return
				}
				if err != nil {
					stats.fail("%s: %v", c.name, err)
					continue
				}
				stats.answered.Add(1)
				stats.count(c.name)
			}
		})
	}
	wg.Wait()
}

// fixture is a registry with signed and unsigned images, a policy
// directory trusting the signer for <registry>/team-a/**, and a gate
// configuration file allowing that loopback registry.
type fixture struct {
	reg      *registrytest.Registry
	signer   *registrytest.Signer
	dir      string
	config   string // path of the GateConfiguration file
	signed   []string
	unsigned []string
	tags     []string // tag references of signed images
}

// newFixture pushes nSigned signed images (alternating cosign layouts) and
// nUnsigned unsigned ones, and writes the policy and a configuration with
// the given extra YAML (e.g. a cache section).
func newFixture(t *testing.T, nSigned, nUnsigned int, extraConfig string) *fixture {
	t.Helper()
	f := &fixture{reg: registrytest.New(t), signer: registrytest.NewSigner(t), dir: t.TempDir()}
	for i := range nSigned {
		tag := fmt.Sprintf("v%d", i)
		d := f.reg.PushImage(t, fmt.Sprintf("team-a/app%d", i), tag)
		layout := registrytest.Classic
		if i%2 == 1 {
			layout = registrytest.Bundle
		}
		f.reg.Sign(t, f.signer, d, layout)
		f.signed = append(f.signed, d.String())
		f.tags = append(f.tags, fmt.Sprintf("%s/team-a/app%d:%s", f.reg.Host, i, tag))
	}
	for i := range nUnsigned {
		f.unsigned = append(f.unsigned, f.reg.PushImage(t, fmt.Sprintf("team-a/unsigned%d", i), "v1").String())
	}
	if err := os.Mkdir(filepath.Join(f.dir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.writePolicy(t, "ci", f.reg.Host+"/team-a/**")
	f.config = filepath.Join(f.dir, "config.yaml")
	f.writeConfig(t, "unmatchedImages: deny\nexemptNamespaces: [kube-system]\n"+extraConfig)
	return f
}

// writePolicy writes an ImagePolicy in team-a trusting the fixture's
// signer for images matching glob.
func (f *fixture) writePolicy(t *testing.T, name, glob string) {
	t.Helper()
	key := "          " + strings.ReplaceAll(strings.TrimSpace(string(f.signer.PublicPEM)), "\n", "\n          ")
	pol := "apiVersion: signgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: " + name + ", namespace: team-a}\nspec:\n  images: [{glob: \"" +
		glob + "\"}]\n  authorities:\n    - name: ci-key\n      key:\n        data: |\n" + key + "\n"
	writeAtomic(t, filepath.Join(f.dir, "policies", name+".yaml"), pol)
}

// writeConfig writes the GateConfiguration with body after the header,
// the registry section and policies.namespacePoliciesCoverImages (the
// fixture's policy is an ImagePolicy, which covers its images only then).
func (f *fixture) writeConfig(t *testing.T, body string) {
	t.Helper()
	cfg := "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n" +
		"registry: {insecureRegistries: [\"" + f.reg.Host + "\"], allowedHosts: [\"" + f.reg.Host + "\"]}\n" +
		"policies: {namespacePoliciesCoverImages: true}\n" + body
	writeAtomic(t, f.config, cfg)
}

// options returns serve options reading the fixture's policies and
// configuration.
func (f *fixture) options(t *testing.T) serveOptions {
	t.Helper()
	o := testOptions(t, t.TempDir())
	o.PolicyDir = filepath.Join(f.dir, "policies")
	o.ConfigFile = f.config
	return o
}

// writeAtomic replaces path with content by rename, as a ConfigMap volume
// update does, so a poller never reads a half-written file.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Reviews. Pods are restricted-compliant unless privileged is set.

var reviewSeq atomic.Int64

func podJSON(images []string, privileged bool) string {
	var cs []string
	for i, img := range images {
		sc := `{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}`
		if privileged {
			sc = `{"privileged":true}`
		}
		cs = append(cs, fmt.Sprintf(`{"name":"c%d","image":%q,"securityContext":%s}`, i, img, sc))
	}
	return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[` +
		strings.Join(cs, ",") + `]}}`
}

func podReview(op, namespace, pod string) []byte {
	uid := fmt.Sprintf("load-%d", reviewSeq.Add(1))
	obj := ""
	if pod != "" {
		obj = `,"object":` + pod
	}
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid +
		`","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"` + op +
		`","namespace":"` + namespace + `","name":"p"` + obj + `}}`)
}

func wantAllowed(r *admissionv1.AdmissionResponse) error {
	if !r.Allowed {
		return fmt.Errorf("denied, want allowed: %s", resultMessage(r))
	}
	return nil
}

// wantDenied returns a check for a denial whose message contains substr.
func wantDenied(substr string) func(r *admissionv1.AdmissionResponse) error {
	return func(r *admissionv1.AdmissionResponse) error {
		if r.Allowed {
			return errors.New("allowed, want denied")
		}
		if msg := resultMessage(r); !strings.Contains(msg, substr) {
			return fmt.Errorf("denied with %q, want a message containing %q", msg, substr)
		}
		return nil
	}
}

func resultMessage(r *admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return ""
	}
	return r.Result.Message
}

// mixedCase is the i-th request of worker w in a mixed load over f: signed
// pods by digest (allowed), tags through /mutate (pinned to the signed
// digest), unsigned, unmatched and privileged pods (denied, each with its
// reason), exempt namespaces, DELETEs and malformed bodies (HTTP 400).
func (f *fixture) mixedCase(w, i int) reviewCase {
	n := w*7919 + i // spread workers over the images
	signed := f.signed[n%len(f.signed)]
	switch i % 8 {
	case 0, 1:
		return reviewCase{name: "signed", path: "/validate?timeout=10s",
			body: podReview("CREATE", "team-a", podJSON([]string{signed}, false)), check: wantAllowed}
	case 2:
		k := n % len(f.tags)
		digest := f.signed[k][strings.LastIndex(f.signed[k], "@"):]
		return reviewCase{name: "mutate-tag", path: "/mutate?timeout=10s",
			body: podReview("CREATE", "team-a", podJSON([]string{f.tags[k]}, false)),
			check: func(r *admissionv1.AdmissionResponse) error {
				if err := wantAllowed(r); err != nil {
					return err
				}
				if !bytes.Contains(r.Patch, []byte(f.tags[k]+digest)) {
					return fmt.Errorf("patch %s does not pin %s to %s", r.Patch, f.tags[k], digest)
				}
				return nil
			}}
	case 3:
		return reviewCase{name: "unsigned", path: "/validate?timeout=10s",
			body:  podReview("CREATE", "team-a", podJSON([]string{f.unsigned[n%len(f.unsigned)]}, false)),
			check: wantDenied("no signatures found for ImagePolicy team-a/ci")}
	case 4:
		img := fmt.Sprintf("%s/other/app@sha256:%064x", f.reg.Host, n%97)
		return reviewCase{name: "unmatched", path: "/validate?timeout=10s",
			body:  podReview("CREATE", "team-a", podJSON([]string{img}, false)),
			check: wantDenied("no ClusterImagePolicy or ImagePolicy in namespace team-a covers")}
	case 5:
		return reviewCase{name: "privileged", path: "/validate?timeout=10s",
			body:  podReview("CREATE", "team-a", podJSON([]string{signed}, true)),
			check: wantDenied(`violates PodSecurity "restricted:latest"`)}
	case 6:
		if n%2 == 0 {
			return reviewCase{name: "exempt", path: "/validate?timeout=10s",
				body: podReview("CREATE", "kube-system", podJSON([]string{f.unsigned[0]}, true)), check: wantAllowed}
		}
		return reviewCase{name: "delete", path: "/validate", body: podReview("DELETE", "team-a", ""), check: wantDenied(`operation "DELETE" is not reviewed`)}
	default:
		return reviewCase{name: "malformed", path: "/validate", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionRev`),
			status: http.StatusBadRequest}
	}
}
