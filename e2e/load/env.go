//go:build load

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const namespace = "shop"

// env is everything one run starts: the registry with signed images, the
// namespace stand-in, PSA's webhook and the cached signgate server.
type env struct {
	o      options
	dir    string
	tls    *serving
	client *http.Client
	reg    *testRegistry
	api    *namespaceAPI
	psa    *server
	sg     *server
	images []name.Digest // load/app-0..9:v1, signed
	mem    []memInfo     // servers already stopped
	extra  []*server     // servers started by sections, still running
}

type memInfo struct {
	Server   string
	HWM, RSS int64
}

func setup(ctx context.Context, o options, dir string) (*env, error) {
	e := &env{o: o, dir: dir}
	var err error
	if e.tls, err = newServing(dir); err != nil {
		return nil, err
	}
	e.client = loadClient(e.tls.clientTLS())
	if e.reg, err = startRegistry(); err != nil {
		return nil, err
	}
	for i := range 10 {
		d, err := e.reg.pushSigned(fmt.Sprintf("load/app-%d", i), "v1")
		if err != nil {
			e.Close()
			return nil, err
		}
		e.images = append(e.images, d)
	}
	ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: map[string]string{
		"kubernetes.io/metadata.name":                namespace,
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn":            "restricted",
		"pod-security.kubernetes.io/audit":           "restricted",
	}}}
	if e.api, err = startNamespaceAPI(ns); err != nil {
		e.Close()
		return nil, err
	}
	logf("starting %s", o.SigngateBin)
	if e.sg, err = startSigngate(ctx, o.SigngateBin, dir, e.reg, namespace, e.tls, gateSettings{Name: "signgate", InProc: o.SigngateBin == inprocCommand}); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// startPSA starts PSA's webhook on first use.
func (e *env) startPSA(ctx context.Context) error {
	if e.psa != nil {
		return nil
	}
	if _, err := os.Stat(e.o.PSABin); err != nil {
		return fmt.Errorf("%s missing: run make e2e-tools first", e.o.PSABin)
	}
	logf("starting %s", e.o.PSABin)
	var err error
	e.psa, err = startPSA(ctx, e.o.PSABin, e.dir, e.api, e.tls)
	return err
}

func (e *env) Close() {
	for _, s := range append([]*server{e.psa, e.sg}, e.extra...) {
		if s != nil {
			s.Stop()
		}
	}
	if e.api != nil {
		e.api.Close()
	}
	if e.reg != nil {
		e.reg.Close()
	}
	e.client.CloseIdleConnections()
}

// startGate starts another signgate server for a section.
func (e *env) startGate(ctx context.Context, s gateSettings) (*server, error) {
	s.InProc = s.InProc || e.o.SigngateBin == inprocCommand
	srv, err := startSigngate(ctx, e.o.SigngateBin, e.dir, e.reg, namespace, e.tls, s)
	if err != nil {
		return nil, err
	}
	e.extra = append(e.extra, srv)
	return srv, nil
}

// stopGate records the peak RSS of a section's server and stops it.
func (e *env) stopGate(s *server) {
	if hwm, rss, err := memStatus(s.Pid()); err == nil {
		e.mem = append(e.mem, memInfo{Server: s.Name, HWM: hwm, RSS: rss})
	}
	s.Stop()
	for i, x := range e.extra {
		if x == s {
			e.extra = append(e.extra[:i], e.extra[i+1:]...)
			break
		}
	}
}

// memory returns peak RSS of every server of the run.
func (e *env) memory() []memInfo {
	m := append([]memInfo(nil), e.mem...)
	for _, s := range append([]*server{e.psa, e.sg}, e.extra...) {
		if s == nil {
			continue
		}
		if hwm, rss, err := memStatus(s.Pid()); err == nil {
			m = append(m, memInfo{Server: s.Name, HWM: hwm, RSS: rss})
		}
	}
	return m
}

// pinned returns n signed images pinned by digest (repo:v1@sha256:...), the
// form the validating webhook sees after the mutating one.
func (e *env) pinned(n int) []string {
	var out []string
	for _, d := range e.images[:n] {
		out = append(out, d.Context().Tag("v1").String()+"@"+d.DigestStr())
	}
	return out
}

// tagged returns n signed images by tag only, as users write them.
func (e *env) tagged(n int) []string {
	var out []string
	for _, d := range e.images[:n] {
		out = append(out, d.Context().Tag("v1").String())
	}
	return out
}

// reviews returns k recorded AdmissionReviews of the same pod with distinct uids.
func reviews(k int, images []string) [][]byte {
	out := make([][]byte, k)
	for i := range out {
		out[i] = podReview(fmt.Sprintf("6a1e2c4b-0000-4000-8000-%012d", i), namespace, images)
	}
	return out
}

// post sends one review and returns the latency and response body.
func (e *env) post(ctx context.Context, url string, body []byte) (time.Duration, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	lat := time.Since(start)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return lat, b, fmt.Errorf("POST %s: %s: %s", url, resp.Status, b)
	}
	return lat, b, nil
}

// expectAllowed sends one review and fails with the server's answer unless
// it admitted the pod.
func (e *env) expectAllowed(ctx context.Context, url string, body []byte) error {
	_, b, err := e.post(ctx, url, body)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(`"allowed":true`)) {
		return fmt.Errorf("%w: POST %s answered %s", errNotAllowed, url, b)
	}
	return nil
}

// measure runs a warm-up and then the measured attack, after checking that
// the server admits the workload.
func (e *env) measure(ctx context.Context, s *server, url, workload string, bodies [][]byte, sh shape) (result, error) {
	return e.measureMarked(ctx, s, url, workload, bodies, sh, func() {})
}

// measureMarked is measure calling mark right before the measured attack.
func (e *env) measureMarked(ctx context.Context, s *server, url, workload string, bodies [][]byte, sh shape, mark func()) (result, error) {
	if err := e.expectAllowed(ctx, url, bodies[0]); err != nil {
		return result{}, err
	}
	if e.o.Warmup > 0 {
		w := sh
		w.Duration, w.Count = e.o.Warmup, 0
		if _, err := attack(ctx, e.client, s.Pid(), url, bodies, w); err != nil {
			return result{}, err
		}
	}
	mark()
	if e.o.TraceDir != "" {
		f, err := os.Create(filepath.Join(e.o.TraceDir, fmt.Sprintf("%s-%s-%s.txt", s.Name, strings.ReplaceAll(workload, " ", "_"), strings.NewReplacer(" ", "_", "/", "per", ",", "").Replace(sh.String()))))
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		sh.Trace = f
	}
	r, err := attack(ctx, e.client, s.Pid(), url, bodies, sh)
	if err != nil {
		return result{}, err
	}
	r.Server, r.Workload = s.Name, workload
	logf("%-28s %-22s %-24s %8.0f r/s  p50 %-8v p99 %-8v p999 %-8v cpu/review %v  allowed %d/%d",
		s.Name, workload, sh, r.Throughput, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond),
		r.P999.Round(10*time.Microsecond), r.CPUPerReview().Round(time.Microsecond), r.Allowed, r.Reviews)
	// A denial is a wrong answer and ends the run; a transport error (the
	// generator shares two cores with the servers) is tolerated up to 0.1%
	// and shown in the report.
	if denied := r.answered() - r.Allowed; denied > 0 || r.failed()*1000 > r.Reviews {
		return r, fmt.Errorf("%w: %s on %s: %d of %d admitted, %d denied, %d failed: %v",
			errNotAllowed, workload, s.Name, r.Allowed, r.Reviews, denied, r.failed(), r.Errors)
	}
	return r, nil
}

func (e *env) validateURL(s *server) string {
	if s == e.psa {
		return s.URL + "?timeout=10s"
	}
	return s.URL + "/validate?timeout=10s"
}
