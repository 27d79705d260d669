package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// ShutdownGrace bounds how long in-flight reviews may take after SIGTERM:
// the API server's longest webhook timeout.
const ShutdownGrace = 30 * time.Second

// Run serves until ctx ends (SIGTERM), then stops accepting, lets
// in-flight reviews finish (up to ShutdownGrace) and returns nil.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.webhook.ServeTLS(s.webhookLn, "", "") }()
	go func() { errc <- s.metrics.Serve(s.metricsLn) }()
	s.log.Info("serving", "webhook", s.webhookLn.Addr().String(), "metrics", s.metricsLn.Addr().String())
	var err error
	select {
	case <-ctx.Done():
		err = s.drain(errc)
		s.log.Info("shutting down: finishing in-flight reviews")
		s.stopAccepting()
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range []*http.Server{s.webhook, s.metrics} {
		wg.Go(func() {
			if e := srv.Shutdown(sctx); e != nil {
				s.log.Warn("shutdown", "addr", srv.Addr, "err", e)
			}
		})
	}
	wg.Wait()
	s.log.Info("stopped")
	return err
}

// RegisterOnShutdown has f called when the webhook server's Shutdown
// begins (http.Server.RegisterOnShutdown).
func (s *Server) RegisterOnShutdown(f func()) { s.webhook.RegisterOnShutdown(f) }

// drain is the first step of a shutdown: /readyz fails at once, and for
// --shutdown-delay the gate still answers every review, closing each
// connection after its answer, while the endpoints of its Service are
// updated; only then does Run close the port. Without the delay the API
// server may still pick this replica for a moment and find the port
// closed: with failurePolicy Fail that is a denied pod.
func (s *Server) drain(errc <-chan error) error {
	s.draining.Store(true)
	if s.shutdownDelay <= 0 {
		return nil
	}
	s.log.Info("shutting down: unready, still answering", "shutdown_delay_seconds", s.shutdownDelay.Seconds())
	s.webhook.SetKeepAlivesEnabled(false)
	select {
	case <-time.After(s.shutdownDelay):
		return nil
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
}

// stopAccepting closes the webhook port and waits until every connection
// already accepted has had its first request read (or has closed, at the
// latest after ReadHeaderTimeout): Go's http.Server drops, unanswered, a
// request it finishes reading after Shutdown has begun, so calling
// Shutdown with a just-accepted connection could leave a review the API
// server sent without an answer.
func (s *Server) stopAccepting() {
	if err := s.webhookLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("close webhook listener", "err", err)
	}
	deadline := time.Now().Add(s.webhook.ReadHeaderTimeout)
	for s.conns.fresh() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// connStates counts the webhook's connections that have not yet begun a
// request (http.StateNew). Used as http.Server.ConnState.
type connStates struct {
	mu  sync.Mutex
	new map[net.Conn]struct{}
}

func (c *connStates) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == http.StateNew {
		if c.new == nil {
			c.new = make(map[net.Conn]struct{})
		}
		c.new[conn] = struct{}{}
		return
	}
	delete(c.new, conn)
}

func (c *connStates) fresh() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.new)
}
