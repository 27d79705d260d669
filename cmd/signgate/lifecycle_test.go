package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/internal/registrytest"
)

// Lifecycle under load: reloads, certificate rotation and SIGTERM while
// reviews keep coming (the load of load_test.go), with zero failed reviews.

// TestMain lets TestServeSIGTERMUnderLoad run this test binary as the
// signgate command itself, so the real main() gets the real signal.
func TestMain(m *testing.M) {
	if os.Getenv("SIGNGATE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// reloadBudget is how soon after a file changes the new decisions must be
// served (the configuration and policy pollers run every second).
const reloadBudget = 2 * time.Second

// transition returns a check for a review whose decision changes from
// before to after during the test. Each worker sends its requests one at a
// time, so once worker w has seen the new decision it must never see the
// old one again: a reload is atomic, never flapping or half-applied.
func transition(before, after func(*admissionv1.AdmissionResponse) error) func(w int) func(*admissionv1.AdmissionResponse) error {
	var mu sync.Mutex
	seen := map[int]bool{}
	return func(w int) func(*admissionv1.AdmissionResponse) error {
		return func(r *admissionv1.AdmissionResponse) error {
			mu.Lock()
			defer mu.Unlock()
			if after(r) == nil {
				seen[w] = true
				return nil
			}
			if seen[w] {
				return fmt.Errorf("old decision after the new one was served: %v", after(r))
			}
			if err := before(r); err != nil {
				return fmt.Errorf("neither the old nor the new decision: %v", err)
			}
			return nil
		}
	}
}

// awaitDecision sends c until check accepts the answer and returns how long
// that took from since. Any failed request fails t.
func awaitDecision(t *testing.T, client *http.Client, base string, since time.Time, c func() reviewCase, check func(*admissionv1.AdmissionResponse) error) time.Duration {
	t.Helper()
	for deadline := since.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r, err := send(t.Context(), client, base, c())
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		if check(r) == nil {
			return time.Since(since)
		}
	}
	t.Fatalf("the new decision was not served within 10s")
	return 0
}

// TestServeReloadsUnderLoad: under a mixed load, a new policy file and a
// changed configuration each take effect within 2s with no failed review
// and no flapping; a bad configuration then keeps the last good one.
func TestServeReloadsUnderLoad(t *testing.T) {
	const workers = 32
	f := newFixture(t, 6, 2, "")
	fresh := f.reg.PushImage(t, "team-new/app", "v1")
	f.reg.Sign(t, f.signer, fresh, registrytest.Classic)
	s, _ := startServer(t, f.options(t))
	base := "https://" + s.webhookLn.Addr().String()
	client, _ := loadClient(workers)

	unmatchedDenied := wantDenied("no ClusterImagePolicy or ImagePolicy in namespace team-a covers")
	policyCheck := transition(unmatchedDenied, wantAllowed)
	configCheck := transition(unmatchedDenied, wantAllowed)
	freshCase := func() reviewCase {
		return reviewCase{name: "new-policy", path: "/validate?timeout=10s",
			body: podReview("CREATE", "team-a", podJSON([]string{fresh.String()}, false))}
	}
	pick := func(w, i int) reviewCase {
		c := f.mixedCase(w, i)
		switch {
		case c.name == "unmatched":
			c.check = configCheck(w)
		case i%8 == 7: // instead of a malformed body
			c = freshCase()
			c.check = policyCheck(w)
		}
		return c
	}
	var stats loadStats
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); runLoad(ctx, client, base, workers, pick, &stats) }()
	time.Sleep(time.Second)

	// A policy for team-new: its signed image goes from "no policy covers
	// it" to allowed.
	written := time.Now()
	f.writePolicy(t, "team-new", f.reg.Host+"/team-new/**")
	policyTook := awaitDecision(t, client, base, written, freshCase, wantAllowed)

	// unmatchedImages deny -> allow.
	unmatched := func() reviewCase {
		return reviewCase{name: "unmatched", path: "/validate?timeout=10s",
			body: podReview("CREATE", "team-a", podJSON([]string{f.reg.Host + "/other/app@sha256:" + strings.Repeat("b", 64)}, false))}
	}
	written = time.Now()
	f.writeConfig(t, "unmatchedImages: allow\nexemptNamespaces: [kube-system]\n")
	configTook := awaitDecision(t, client, base, written, unmatched, wantAllowed)

	// Written right after the last change was served, i.e. just after a
	// poll: a poll interval over the budget shows here.
	exempt := func() reviewCase {
		return reviewCase{name: "exempt", path: "/validate?timeout=10s",
			body: podReview("CREATE", "team-x", podJSON([]string{f.unsigned[0]}, true))}
	}
	if _, err := send(t.Context(), client, base, reviewCase{name: "exempt", path: "/validate", body: exempt().body, check: wantDenied("violates PodSecurity")}); err != nil {
		t.Fatal(err)
	}
	written = time.Now()
	f.writeConfig(t, "unmatchedImages: allow\nexemptNamespaces: [kube-system, team-x]\n")
	exemptTook := awaitDecision(t, client, base, written, exempt, wantAllowed)
	configTook = max(configTook, exemptTook)

	// A bad configuration: rejected, counted, the last good one stays
	// (the transition checks fail the load if "deny" came back).
	f.writeConfig(t, "unmatchedImages: sometimes\n")
	metrics := "http://" + s.metricsLn.Addr().String() + "/metrics"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, m := get(t, metrics); strings.Contains(m, `signgate_config_reloads_total{result="failure"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bad configuration was not reported as a failed reload")
		}
	}
	time.Sleep(time.Second)
	cancel()
	<-done

	stats.requireNoFailures(t)
	t.Logf("reloads under load (%d workers): %d reviews answered, policy change served after %s, slowest configuration change after %s",
		workers, stats.answered.Load(), policyTook.Round(time.Millisecond), configTook.Round(time.Millisecond))
	if policyTook > reloadBudget {
		t.Errorf("new policy served after %s, want under %s", policyTook, reloadBudget)
	}
	if configTook > reloadBudget {
		t.Errorf("new configuration served after %s, want under %s", configTook, reloadBudget)
	}
}

// TestServeRotatesCertificateUnderLoad: the serving certificate is
// rewritten in place while reviews keep coming over kept-alive connections
// and over a new connection each; none fails, and handshakes after the
// rotation get the new certificate without a restart.
func TestServeRotatesCertificateUnderLoad(t *testing.T) {
	const workers, fresh = 24, 8
	f := newFixture(t, 4, 2, "")
	o := f.options(t)
	s, _ := startServer(t, o)
	base := "https://" + s.webhookLn.Addr().String()
	client, _ := loadClient(workers)

	// A new connection per review, recording when each handshake began
	// and which certificate it got: the server picks the certificate after
	// the ClientHello, so a handshake begun after the rotation must get
	// the new one.
	type handshake struct {
		began  time.Time
		serial int64
	}
	var mu sync.Mutex
	var handshakes []handshake
	dialer := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // records the certificate served
	newConnClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			began := time.Now()
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			handshakes = append(handshakes, handshake{began, conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Int64()})
			return conn, nil
		},
	}}

	var stats, freshStats loadStats
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { runLoad(ctx, client, base, workers, f.mixedCase, &stats) })
	wg.Go(func() { runLoad(ctx, newConnClient, base, fresh, f.mixedCase, &freshStats) })
	time.Sleep(time.Second)

	writeCert(t, o.CertFile, o.KeyFile, 2)
	later := time.Now().Add(time.Minute)
	for _, file := range []string{o.CertFile, o.KeyFile} {
		if err := os.Chtimes(file, later, later); err != nil {
			t.Fatal(err)
		}
	}
	rotated := time.Now()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	wg.Wait()

	stats.requireNoFailures(t)
	freshStats.requireNoFailures(t)
	var before, after, stale int
	mu.Lock() // dials cut short by cancel may still be finishing
	defer mu.Unlock()
	for _, h := range handshakes {
		switch {
		case h.began.Before(rotated):
			before++
		case h.serial == 2:
			after++
		default:
			stale++ // begun after the rotation, got the old certificate
		}
	}
	t.Logf("rotation under load: %d + %d reviews answered; %d handshakes before, %d with the new certificate after",
		stats.answered.Load(), freshStats.answered.Load(), before, after)
	if after == 0 {
		t.Error("no handshake got the new certificate after the rotation")
	}
	if stale > 0 {
		t.Errorf("%d handshakes after the rotation still got the old certificate", stale)
	}
	if got := servedSerial(t, s.webhookLn.Addr().String()); got != 2 {
		t.Errorf("serial after rotation = %d, want 2", got)
	}
}

// TestServeSIGTERMUnderLoad runs the signgate binary (this test binary
// through TestMain) with --shutdown-delay=2s and sends it SIGTERM while
// reviews that wait on a slow registry are in flight. /readyz must fail at
// once; during the delay every review, new connections included, must
// still be answered (checked for those sent in its first half, so a slow
// handshake cannot straddle its end); after it, every review whose request reached the
// server must be answered, and the process must exit 0. Before SIGTERM
// nothing may fail. After the delay new connections are refused.
// Without a delay (the flag's default) the port closes at once, under
// the same load.
func TestServeSIGTERMUnderLoad(t *testing.T) {
	for _, delay := range []time.Duration{2 * time.Second, 0} {
		t.Run("shutdown-delay="+delay.String(), func(t *testing.T) { testSIGTERMUnderLoad(t, delay) })
	}
}

func testSIGTERMUnderLoad(t *testing.T, delay time.Duration) {
	const workers = 16
	// One cached verdict for 8 images and a registry that takes 200ms per
	// request: most reviews are busy verifying when SIGTERM arrives.
	f := newFixture(t, 8, 2, "cache: {maxEntries: 1}\n")
	f.reg.SetFault(registrytest.Delay(200 * time.Millisecond))
	o := f.options(t)
	listen, metrics := freePort(t), freePort(t)
	cmd := exec.Command(os.Args[0], "serve", "--listen="+listen, "--metrics-listen="+metrics,
		"--tls-cert-file="+o.CertFile, "--tls-key-file="+o.KeyFile, "--policy-dir="+o.PolicyDir,
		"--config="+o.ConfigFile, "--namespace=signgate-system", "--log-format=text", "--shutdown-delay="+delay.String())
	cmd.Env = append(os.Environ(), "SIGNGATE_TEST_MAIN=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("signgate output:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + metrics + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("signgate not ready after 30s:\n%s", logs.String())
		}
	}

	// A new connection per review: a kept-alive idle connection may be
	// closed under a request being sent (see docs/security.md).
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // self-signed test certificate
	}}
	var termAt atomic.Pointer[time.Time]
	var answered, inFlightAnswered, drainAnswered, notAccepted atomic.Int64
	var stats loadStats
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := f.mixedCase(w, i)
				stats.sent.Add(1)
				var wrote atomic.Bool
				ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
					WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
				})
				started := time.Now()
				_, err := send(ctx, client, "https://"+listen, c)
				term := termAt.Load()
				switch {
				case err == nil:
					answered.Add(1)
					if term != nil && started.Before(*term) {
						inFlightAnswered.Add(1)
					}
					if term != nil && started.After(*term) {
						drainAnswered.Add(1)
					}
				case term != nil && delay > 0 && started.Before(term.Add(delay/2)):
					stats.fail("%s started %s after SIGTERM, inside --shutdown-delay: %v", c.name, started.Sub(*term).Round(time.Millisecond), err)
				case term != nil && !wrote.Load():
					// After SIGTERM: refused or reset before the request
					// was sent; nothing was admitted or denied.
					notAccepted.Add(1)
					time.Sleep(10 * time.Millisecond)
				default:
					stats.fail("%s (request written: %v, after SIGTERM: %v): %v", c.name, wrote.Load(), term != nil, err)
				}
			}
		})
	}

	time.Sleep(1500 * time.Millisecond)
	now := time.Now()
	termAt.Store(&now)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if delay > 0 {
		unready := false
		for deadline := now.Add(delay / 2); time.Now().Before(deadline) && !unready; time.Sleep(20 * time.Millisecond) {
			if resp, err := http.Get("http://" + metrics + "/readyz"); err == nil {
				resp.Body.Close()
				unready = resp.StatusCode == http.StatusServiceUnavailable
			}
		}
		if !unready {
			t.Errorf("/readyz did not fail within %s of SIGTERM", delay/2)
		}
	}
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(shutdownGrace + 10*time.Second):
		t.Fatal("signgate did not exit after SIGTERM")
	}
	stoppedAfter := time.Since(now)
	close(stop)
	wg.Wait()

	stats.requireNoFailures(t)
	t.Logf("SIGTERM under load: %d reviews answered, %d of them in flight at SIGTERM, %d sent during the shutdown delay; %d connections refused after it; exit after %s",
		answered.Load(), inFlightAnswered.Load(), drainAnswered.Load(), notAccepted.Load(), stoppedAfter.Round(time.Millisecond))
	if delay > 0 && drainAnswered.Load() == 0 {
		t.Error("no review sent after SIGTERM was answered: --shutdown-delay did not keep serving")
	}
	if stoppedAfter < delay {
		t.Errorf("exited %s after SIGTERM, before the %s shutdown delay", stoppedAfter, delay)
	}
	if exitErr != nil {
		t.Errorf("signgate exited with %v after SIGTERM, want exit 0", exitErr)
	}
	if inFlightAnswered.Load() == 0 {
		t.Error("no review in flight at SIGTERM was answered (the test sent none, or the gate dropped them)")
	}
	if !strings.Contains(logs.String(), "finishing in-flight reviews") {
		t.Errorf("no shutdown log line:\n%s", logs.String())
	}
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
