package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/internal/server"
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

// reloadTarget is how soon after a file changes the new decisions should
// be served (the configuration and policy pollers run every second). It is
// reported, not asserted: a loaded machine may miss it.
const reloadTarget = 2 * time.Second

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
	waitFor(t, "the new decision to be served", func() error {
		r, err := send(t.Context(), client, base, c())
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		return check(r)
	})
	return time.Since(since)
}

// awaitAnswered waits until the load has had n more reviews answered than
// when it was called.
func awaitAnswered(t *testing.T, what string, stats *loadStats, n int64) {
	t.Helper()
	target := stats.answered.Load() + n
	waitFor(t, what, func() error {
		if got := stats.answered.Load(); got < target {
			return fmt.Errorf("%d of %d reviews answered", got, target)
		}
		return nil
	})
}

// TestServeReloadsUnderLoad: under a mixed load, a new policy file and a
// changed configuration each take effect with no failed review and no
// flapping; a bad configuration then keeps the last good one. How long each
// change took to be served is reported against reloadTarget.
func TestServeReloadsUnderLoad(t *testing.T) {
	const workers = 32
	f := newFixture(t, 6, 2, "")
	fresh := f.reg.PushImage(t, "team-new/app", "v1")
	f.reg.Sign(t, f.signer, fresh, registrytest.Classic)
	s, _ := startServer(t, f.options(t))
	base := "https://" + s.WebhookAddr().String()
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
	awaitAnswered(t, "the load to be under way", &stats, 2*workers)

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
	// poll: a poll interval over the target shows here.
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
	metrics := "http://" + s.MetricsAddr().String() + "/metrics"
	waitFor(t, "the bad configuration to be reported as a failed reload", func() error {
		if _, m := get(t, metrics); !strings.Contains(m, `signgate_config_reloads_total{result="failure"} 1`) {
			return errNotYet
		}
		return nil
	})
	// After the failed reload unmatched images stay allowed: for a probe,
	// and for the load. Each worker has at most one review in flight, so of
	// 2×workers more "unmatched" answers at least workers were sent after
	// the failure was counted.
	if _, err := send(t.Context(), client, base, reviewCase{name: "unmatched", path: "/validate?timeout=10s", body: unmatched().body, check: wantAllowed}); err != nil {
		t.Errorf("after the bad configuration: %v", err)
	}
	unmatchedAnswered := caseCount(&stats, "unmatched")
	waitFor(t, "the load to go on after the failed reload", func() error {
		if got := caseCount(&stats, "unmatched") - unmatchedAnswered; got < 2*workers {
			return fmt.Errorf("%d of %d unmatched reviews answered", got, 2*workers)
		}
		return nil
	})
	cancel()
	<-done

	stats.requireNoFailures(t)
	t.Logf("reloads under load (%d workers): %d reviews answered, policy change served after %s, slowest configuration change after %s (target %s)",
		workers, stats.answered.Load(), policyTook.Round(time.Millisecond), configTook.Round(time.Millisecond), reloadTarget)
	if policyTook > reloadTarget || configTook > reloadTarget {
		t.Logf("slower than the %s target (reported, not asserted: the machine may be loaded)", reloadTarget)
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
	base := "https://" + s.WebhookAddr().String()
	client, _ := loadClient(workers)

	// A new connection per review, recording when each handshake began
	// and which certificate it got: the server picks the certificate after
	// the ClientHello, so a handshake begun after the rotation must get
	// the new one.
	type handshake struct {
		afterRotation bool // the dial began once the new files were in place
		serial        int64
	}
	var mu sync.Mutex
	var handshakes []handshake
	var rotated atomic.Bool
	dialer := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // records the certificate served
	newConnClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			afterRotation := rotated.Load()
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			handshakes = append(handshakes, handshake{afterRotation, conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Int64()})
			return conn, nil
		},
	}}
	handshakesAfter := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, h := range handshakes {
			if h.afterRotation {
				n++
			}
		}
		return n
	}

	var stats, freshStats loadStats
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { runLoad(ctx, client, base, workers, f.mixedCase, &stats) })
	wg.Go(func() { runLoad(ctx, newConnClient, base, fresh, f.mixedCase, &freshStats) })
	awaitAnswered(t, "the kept-alive load to be under way", &stats, 2*workers)
	awaitAnswered(t, "the new-connection load to be under way", &freshStats, 2*fresh)

	writeCert(t, o.CertFile, o.KeyFile, 2)
	later := time.Now().Add(time.Minute)
	for _, file := range []string{o.CertFile, o.KeyFile} {
		if err := os.Chtimes(file, later, later); err != nil {
			t.Fatal(err)
		}
	}
	rotated.Store(true)
	// Enough handshakes after the rotation, and kept-alive connections
	// from before it still in use, for a stale certificate or a dropped
	// connection to show.
	waitFor(t, "handshakes after the rotation", func() error {
		if n := handshakesAfter(); n < 4*fresh {
			return fmt.Errorf("%d of %d handshakes after the rotation", n, 4*fresh)
		}
		return nil
	})
	awaitAnswered(t, "kept-alive reviews after the rotation", &stats, 2*workers)
	cancel()
	wg.Wait()

	stats.requireNoFailures(t)
	freshStats.requireNoFailures(t)
	var before, after, stale int
	mu.Lock() // dials cut short by cancel may still be finishing
	defer mu.Unlock()
	for _, h := range handshakes {
		switch {
		case !h.afterRotation:
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
	if got := servedSerial(t, s.WebhookAddr().String()); got != 2 {
		t.Errorf("serial after rotation = %d, want 2", got)
	}
}

// TestServeSIGTERMUnderLoad runs the signgate binary (this test binary
// through TestMain) with --shutdown-delay=2s and sends it SIGTERM while
// reviews are held waiting on the registry. The registry lets them go only
// once the gate has logged that it is shutting down, and they must be
// answered; so must every review whose request reached the gate, and the
// process must exit 0, not before the delay. Before SIGTERM nothing may
// fail. With a delay, /readyz fails once the gate has logged that it is
// draining, that log comes before the port closes, and no connection may
// be refused before the delay has passed; reviews sent during it are
// answered. Without a delay (the flag's default) the port closes at once,
// under the same load.
func TestServeSIGTERMUnderLoad(t *testing.T) {
	for _, delay := range []time.Duration{2 * time.Second, 0} {
		t.Run("shutdown-delay="+delay.String(), func(t *testing.T) { testSIGTERMUnderLoad(t, delay) })
	}
}

// servingLog is the line `signgate serve` logs once both ports are open.
var servingLog = regexp.MustCompile(`msg=serving webhook=(\S+) metrics=(\S+)`)

func testSIGTERMUnderLoad(t *testing.T, delay time.Duration) {
	const workers = 16
	// One cached verdict for 8 images and a registry that takes 200ms per
	// request: most reviews are busy verifying when SIGTERM arrives. The
	// longest registry timeout: reviews are held on the registry around
	// SIGTERM for as long as the test takes to see the gate react.
	f := newFixture(t, 8, 2, "")
	writeAtomic(t, f.config, "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"+
		"registry: {insecureRegistries: [\""+f.reg.Host+"\"], allowedHosts: [\""+f.reg.Host+"\"], timeout: 20s}\n"+
		"unmatchedImages: deny\nexemptNamespaces: [kube-system]\ncache: {maxEntries: 1}\npolicies: {namespacePoliciesCoverImages: true}\n")
	slow := registrytest.Delay(200 * time.Millisecond)
	f.reg.SetFault(slow)
	o := f.options(t)
	// Both ports on :0, read back from the "serving" line: no free-port race.
	cmd := exec.Command(os.Args[0], "serve", "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
		"--tls-cert-file="+o.CertFile, "--tls-key-file="+o.KeyFile, "--policy-dir="+o.PolicyDir,
		"--config="+o.ConfigFile, "--namespace=signgate-system", "--log-format=text", "--shutdown-delay="+delay.String())
	cmd.Env = append(os.Environ(), "SIGNGATE_TEST_MAIN=1")
	var logs syncBuffer
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
	// running fails t if signgate has exited.
	running := func() {
		t.Helper()
		select {
		case err := <-exited:
			t.Fatalf("signgate exited early (%v)", err)
		default:
		}
	}
	var listen, metrics string
	waitFor(t, "signgate to open its ports", func() error {
		running()
		m := servingLog.FindStringSubmatch(logs.String())
		if m == nil {
			return errNotYet
		}
		listen, metrics = m[1], m[2]
		return nil
	})
	readyz := func() (int, error) {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitFor(t, "signgate to be ready", func() error {
		running()
		if code, err := readyz(); err != nil || code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %v", code, err)
		}
		return nil
	})

	// A new connection per review: a kept-alive idle connection may be
	// closed under a request being sent (see docs/security.md). Deadlines
	// past the registry timeout: a held review is not a late one.
	client := &http.Client{Timeout: hangGuard, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // self-signed test certificate
	}}
	pick := func(w, i int) reviewCase {
		c := f.mixedCase(w, i)
		c.path = strings.Replace(c.path, "timeout=10s", "timeout=30s", 1)
		return c
	}
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
				c := pick(w, i)
				stats.sent.Add(1)
				var wrote atomic.Bool
				ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
					WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
				})
				started := time.Now()
				_, err := send(ctx, client, "https://"+listen, c)
				failedAt := time.Now()
				term := termAt.Load()
				switch {
				case err == nil:
					answered.Add(1)
					stats.answered.Add(1)
					if term != nil && started.Before(*term) {
						inFlightAnswered.Add(1)
					}
					if term != nil && started.After(*term) {
						drainAnswered.Add(1)
					}
				case term == nil:
					stats.fail("%s before SIGTERM: %v", c.name, err)
				case wrote.Load():
					// The gate had accepted the connection (TLS is done):
					// it must answer, whatever the delay.
					stats.fail("%s (request written, after SIGTERM): %v", c.name, err)
				case delay > 0 && failedAt.Before(term.Add(delay)):
					// The port closes no sooner than delay after SIGTERM
					// was sent: a refusal seen before that is the gate's.
					stats.fail("%s refused %s after SIGTERM, inside --shutdown-delay: %v", c.name, failedAt.Sub(*term).Round(time.Millisecond), err)
				default:
					// After the port closed: refused or reset before the
					// request was sent; nothing was admitted or denied.
					notAccepted.Add(1)
					select {
					case <-stop:
					case <-time.After(10 * time.Millisecond): // back off, not a wait for an event
					}
				}
			}
		})
	}

	// Under way, then reviews held on the registry: they are in flight
	// when SIGTERM arrives, whatever the machine's speed.
	awaitAnswered(t, "the load to be under way", &stats, 2*workers)
	hold := registrytest.NewHold(slow)
	t.Cleanup(hold.Release) // before the registry closes: it waits for held requests
	f.reg.SetFault(hold.Fault)
	await(t, "a review to wait on the registry", hold.Arrived())
	now := time.Now()
	termAt.Store(&now)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	firstLog := "shutting down: finishing in-flight reviews"
	if delay > 0 {
		firstLog = "shutting down: unready, still answering"
	}
	waitFor(t, "the gate to log that it is shutting down", func() error {
		running()
		if !strings.Contains(logs.String(), firstLog) {
			return errNotYet
		}
		return nil
	})
	if delay > 0 {
		// Logged once /readyz fails and before the port closes.
		code, err := readyz()
		switch {
		case err == nil && code != http.StatusServiceUnavailable:
			t.Errorf("/readyz = %d once the gate logged %q, want %d", code, firstLog, http.StatusServiceUnavailable)
		case err != nil && time.Now().Before(now.Add(delay)):
			t.Errorf("/readyz unreachable inside --shutdown-delay: %v", err)
		case err != nil:
			t.Logf("/readyz not observed during the delay (the machine was too slow): %v", err)
		}
	}
	hold.Release()

	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(server.ShutdownGrace + hangGuard):
		t.Fatal("signgate did not exit after SIGTERM")
	}
	stoppedAfter := time.Since(now)
	close(stop)
	wg.Wait()

	stats.requireNoFailures(t)
	out := logs.String()
	t.Logf("SIGTERM under load: %d reviews answered, %d of them in flight at SIGTERM, %d sent during the shutdown delay; %d connections refused after it; exit after %s",
		answered.Load(), inFlightAnswered.Load(), drainAnswered.Load(), notAccepted.Load(), stoppedAfter.Round(time.Millisecond))
	if delay > 0 {
		draining, closing := strings.Index(out, "shutting down: unready, still answering"), strings.Index(out, "shutting down: finishing in-flight reviews")
		if draining < 0 || closing < draining {
			t.Errorf("want %q logged before %q:\n%s", "unready, still answering", "finishing in-flight reviews", out)
		}
		if n, _ := stats.Failed(); n == 0 && drainAnswered.Load() == 0 {
			// Refusals inside the delay fail the load above; none got
			// through only if the machine did not send one in time.
			t.Logf("no review sent after SIGTERM got through before the %s delay ended (the machine was too slow to try)", delay)
		}
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
	if !strings.Contains(out, "finishing in-flight reviews") {
		t.Errorf("no shutdown log line:\n%s", out)
	}
}
