//go:build load

package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"
)

// compare runs the same recorded pod reviews against PSA's webhook and
// signgate's validating webhook (signatures cached + Pod Security +
// hardening): saturation with the same workers for 1, 3 and 10 containers,
// then a fixed rate with the 3-container pod for p99 and CPU per review.
func compare(ctx context.Context, e *env, rep *report) error {
	return compareShapes(ctx, e, rep, true, true)
}

// compareFixed is only the fixed-rate half of compare.
func compareFixed(ctx context.Context, e *env, rep *report) error {
	return compareShapes(ctx, e, rep, false, true)
}

func compareShapes(ctx context.Context, e *env, rep *report, saturation, fixed bool) error {
	if err := e.startPSA(ctx); err != nil {
		return err
	}
	for round := range e.o.Rounds {
		pair := []*server{e.psa, e.sg}
		if round%2 == 1 {
			slices.Reverse(pair)
		}
		for _, n := range []int{1, 3, 10} {
			if !saturation {
				break
			}
			bodies := reviews(64, e.pinned(n))
			for _, s := range pair {
				r, err := e.measure(ctx, s, e.validateURL(s), fmt.Sprintf("%d-container pod", n), bodies,
					shape{Workers: e.o.Workers, Duration: e.o.Duration})
				if err != nil {
					return err
				}
				rep.add("compare", round, r)
			}
		}
		bodies := reviews(64, e.pinned(3))
		for _, s := range pair {
			if !fixed {
				break
			}
			r, err := e.measure(ctx, s, e.validateURL(s), "3-container pod", bodies,
				shape{Rate: e.o.Rate, Workers: e.o.Workers, Duration: e.o.Duration})
			if err != nil {
				return err
			}
			rep.add("compare", round, r)
		}
	}
	return nil
}

// mutateCached measures the mutating webhook on tag-only images whose
// digests are in the tag cache: the review resolves from memory and
// returns a JSON patch pinning each container.
func mutateCached(ctx context.Context, e *env, rep *report) error {
	bodies := reviews(64, e.tagged(3))
	url := e.sg.URL + "/mutate?timeout=10s"
	if _, b, err := e.post(ctx, url, bodies[0]); err != nil || !bytes.Contains(b, []byte(`"patch":`)) {
		return fmt.Errorf("mutate gave no patch: %v %s", err, b)
	}
	r, err := e.measure(ctx, e.sg, url, "3-container pod, /mutate", bodies, shape{Workers: e.o.Workers, Duration: e.o.Duration})
	if err != nil {
		return err
	}
	rep.add("mutate", 0, r)
	return nil
}

// noCache measures signgate with its verdict cache reduced to one entry,
// so every review verifies every signature against the registry the way a
// cacheless gate calling the cosign library per review does, next to the
// cached server on the same workload. The workload is 64 reviews of
// 3-container pods over 192 distinct signed images, so that no two
// concurrent reviews ask for the same digest and singleflight cannot merge
// their verifications.
func noCache(ctx context.Context, e *env, rep *report) error {
	var bodies [][]byte
	for i := range 64 {
		var imgs []string
		for j := range 3 {
			d, err := e.reg.pushSigned(fmt.Sprintf("load/many-%d-%d", i, j), "v1")
			if err != nil {
				return err
			}
			imgs = append(imgs, d.Context().Tag("v1").String()+"@"+d.DigestStr())
		}
		bodies = append(bodies, podReview(fmt.Sprintf("6a1e2c4b-0000-4000-9000-%012d", i), namespace, imgs))
	}
	srv, err := e.startGate(ctx, gateSettings{Name: "signgate-nocache", NoCache: true})
	if err != nil {
		return err
	}
	defer e.stopGate(srv)
	sh := shape{Workers: e.o.Workers, Duration: e.o.Duration}
	for _, s := range []*server{e.sg, srv} {
		var before map[string]int
		r, err := e.measureMarked(ctx, s, e.validateURL(s), "3-container pod, 192 images", bodies, sh,
			func() { before = e.reg.Count.snapshot() })
		if err != nil {
			return err
		}
		r.Registry, _ = e.reg.Count.since(before)
		rep.add("nocache", 0, r)
	}
	return nil
}

// coldTrial is one cold measurement: three 1-container reviews of fresh
// images one after the other, then one 3-container review of three other
// fresh images.
type coldTrial struct {
	Singles [3]time.Duration
	Triple  time.Duration
	Warm    time.Duration // the same 3-container review again, now cached
}

// cold measures reviews whose signatures are not cached yet.
func cold(ctx context.Context, e *env, rep *report) error {
	url := e.sg.URL + "/validate?timeout=10s"
	for t := range e.o.ColdTrials {
		var imgs []string
		for i := range 6 {
			d, err := e.reg.pushSigned(fmt.Sprintf("load/cold-%d-%d", t, i), "v1")
			if err != nil {
				return err
			}
			imgs = append(imgs, d.Context().Tag("v1").String()+"@"+d.DigestStr())
		}
		var tr coldTrial
		for i := range 3 {
			lat, b, err := e.post(ctx, url, podReview(fmt.Sprintf("cold-%d-%d", t, i), namespace, imgs[i:i+1]))
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte(`"allowed":true`)) {
				return fmt.Errorf("%w: %s", errNotAllowed, b)
			}
			tr.Singles[i] = lat
		}
		body := podReview(fmt.Sprintf("cold-%d-3", t), namespace, imgs[3:6])
		lat, b, err := e.post(ctx, url, body)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte(`"allowed":true`)) {
			return fmt.Errorf("%w: %s", errNotAllowed, b)
		}
		tr.Triple = lat
		if tr.Warm, _, err = e.post(ctx, url, body); err != nil {
			return err
		}
		rep.cold = append(rep.cold, tr)
	}
	return nil
}

// scaleUp sends N reviews of pods with the same tag-only image at once to
// a freshly started server (cold caches): first to /mutate, which resolves
// and pins the tag, then to /validate with the pinned image, counting the
// registry requests the gate makes.
func scaleUp(ctx context.Context, e *env, rep *report) error {
	d, err := e.reg.pushSigned("load/scale", "v1")
	if err != nil {
		return err
	}
	tag := d.Context().Tag("v1").String()
	mut := reviews(e.o.ScaleUp, []string{tag})
	val := reviews(e.o.ScaleUp, []string{tag + "@" + d.DigestStr()})
	for _, s := range []gateSettings{{Name: "signgate-scaleup"}} {
		srv, err := e.startGate(ctx, s)
		if err != nil {
			return err
		}
		sh := shape{Workers: e.o.ScaleUp, Count: e.o.ScaleUp, Duration: time.Minute}
		su := scaleUpResult{Server: s.Name, Pods: e.o.ScaleUp}
		before := e.reg.Count.snapshot()
		m, err := attack(ctx, e.client, srv.Pid(), srv.URL+"/mutate?timeout=30s", mut, sh)
		if err != nil {
			e.stopGate(srv)
			return err
		}
		su.Mutate = m
		v, err := attack(ctx, e.client, srv.Pid(), srv.URL+"/validate?timeout=30s", val, sh)
		if err != nil {
			e.stopGate(srv)
			return err
		}
		su.Validate = v
		su.Requests, su.Breakdown = e.reg.Count.since(before)
		logf("scale-up %s: %d registry requests (%s); mutate patched %d/%d, validate allowed %d/%d",
			s.Name, su.Requests, su.Breakdown, m.Patched, m.Reviews, v.Allowed, v.Reviews)
		rep.scaleUp = append(rep.scaleUp, su)
		e.stopGate(srv)
		e.client.CloseIdleConnections()
	}
	return nil
}

type scaleUpResult struct {
	Server           string
	Pods             int
	Mutate, Validate result
	Requests         int
	Breakdown        string
}
