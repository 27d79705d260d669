//go:build load

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// loadClient is the keep-alive HTTPS client every attack of a run shares,
// so warm-up connections are reused by the measured attack. HTTP/1.1, as
// both webhook servers are driven the same way.
func loadClient(tlsCfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     tlsCfg,
			MaxIdleConnsPerHost: 2048,
			ForceAttemptHTTP2:   false,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		},
	}
}

// shape is how an attack is paced: Rate 0 means as fast as Workers allow
// (saturation), otherwise a fixed number of reviews per second.
type shape struct {
	Rate     int
	Workers  int
	Duration time.Duration
	Count    int       // stop after this many requests when > 0
	Trace    io.Writer // if set, gets "offset_ms latency_ms" per request
}

func (s shape) String() string {
	if s.Rate == 0 {
		return fmt.Sprintf("saturation, %d workers", s.Workers)
	}
	return fmt.Sprintf("%d/s fixed", s.Rate)
}

// result is one measured attack on one server.
type result struct {
	Server     string
	Workload   string
	Shape      shape
	Reviews    uint64
	Throughput float64 // successful reviews per second
	Success    float64 // fraction of HTTP 2xx
	Allowed    uint64  // responses that admitted the pod
	Patched    uint64  // responses that carried a JSON patch
	Registry   int     // registry requests during the attack, where counted
	P50, P99   time.Duration
	P999, Max  time.Duration
	CPU        time.Duration // server user+system CPU during the attack
	Errors     []string
}

// answered is the number of HTTP 2xx answers.
func (r result) answered() uint64 { return uint64(math.Round(r.Success * float64(r.Reviews))) }

// failed is the number of requests without a 2xx answer.
func (r result) failed() uint64 { return r.Reviews - r.answered() }

// CPUPerReview is the server's CPU time per review, from /proc.
func (r result) CPUPerReview() time.Duration {
	if r.Reviews == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Reviews)
}

// attack sends the bodies round-robin to url with the given shape and
// measures latency on the client and CPU on the server process pid.
func attack(ctx context.Context, client *http.Client, pid int, url string, bodies [][]byte, sh shape) (result, error) {
	var i atomic.Uint64
	var sent atomic.Int64
	hdr := http.Header{"Content-Type": []string{"application/json"}}
	targeter := func(t *vegeta.Target) error {
		if sh.Count > 0 && sent.Add(1) > int64(sh.Count) {
			return vegeta.ErrNoTargets
		}
		n := i.Add(1) - 1
		*t = vegeta.Target{Method: http.MethodPost, URL: url, Body: bodies[n%uint64(len(bodies))], Header: hdr}
		return nil
	}
	opts := []func(*vegeta.Attacker){vegeta.Client(client), vegeta.Workers(uint64(sh.Workers)), vegeta.MaxBody(64 << 10)}
	var pacer vegeta.Pacer = vegeta.Rate{Freq: sh.Rate, Per: time.Second}
	if sh.Rate == 0 {
		opts = append(opts, vegeta.MaxWorkers(uint64(sh.Workers)))
	} else {
		opts = append(opts, vegeta.MaxWorkers(uint64(4*sh.Workers)))
	}
	atk := vegeta.NewAttacker(opts...)
	cpu0, err := cpuTime(pid)
	if err != nil {
		return result{}, err
	}
	var m vegeta.Metrics
	var allowed, patched uint64
	allowedTrue, patch := []byte(`"allowed":true`), []byte(`"patch":`)
	start := time.Now()
	results := atk.Attack(targeter, pacer, sh.Duration, "")
	for {
		select {
		case <-ctx.Done():
			atk.Stop()
			for range results {
			}
			return result{}, ctx.Err()
		case res, ok := <-results:
			if !ok {
				goto done
			}
			if res.Error == vegeta.ErrNoTargets.Error() {
				continue
			}
			if bytes.Contains(res.Body, allowedTrue) {
				allowed++
			}
			if bytes.Contains(res.Body, patch) {
				patched++
			}
			res.Body = nil
			if sh.Trace != nil {
				fmt.Fprintf(sh.Trace, "%.1f %.3f\n", float64(res.Timestamp.Sub(start))/1e6, float64(res.Latency)/1e6)
			}
			m.Add(res)
		}
	}
done:
	cpu1, err := cpuTime(pid)
	if err != nil {
		return result{}, err
	}
	m.Close()
	return result{
		Shape:      sh,
		Reviews:    m.Requests,
		Throughput: m.Throughput,
		Success:    m.Success,
		Allowed:    allowed,
		Patched:    patched,
		P50:        m.Latencies.P50,
		P99:        m.Latencies.P99,
		P999:       m.Latencies.Quantile(0.999),
		Max:        m.Latencies.Max,
		CPU:        cpu1 - cpu0,
		Errors:     m.Errors,
	}, nil
}
