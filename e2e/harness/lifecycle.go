//go:build e2e

package harness

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// TB is what the harness needs from its caller: somewhere to log, a place
// for temporary files and a way to register teardown. *testing.T and
// *testing.B satisfy it; Session is the implementation for a main package
// (the demo) and for TestMain.
type TB interface {
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// Session is a TB for code that has no *testing.T. Cleanups run in reverse
// order of registration when Close is called. Safe for concurrent use.
type Session struct {
	out io.Writer
	dir string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	closed   bool
	n        int
}

// NewSession returns a Session that logs to out and keeps its temporary
// files under a fresh directory named after prefix (removed by Close).
func NewSession(out io.Writer, prefix string) (*Session, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("create session dir: %w", err)
	}
	return &Session{out: out, dir: dir}, nil
}

// Dir is the session's root temporary directory.
func (s *Session) Dir() string { return s.dir }

// Logf writes one line to the session's output.
func (s *Session) Logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.out, msg)
}

// Cleanup registers f to run at Close, after every cleanup registered later.
func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir returns a new directory inside the session's directory.
func (s *Session) TempDir() string {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	dir := fmt.Sprintf("%s/%03d", s.dir, n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(fmt.Sprintf("create temp dir: %v", err))
	}
	return dir
}

// Fail marks the session failed: Close then prints the tails of the
// component logs before removing them.
func (s *Session) Fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = true
}

// Failed reports whether Fail was called.
func (s *Session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Close runs the registered cleanups in reverse order and removes the
// session's directory. Calling it again does nothing.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if len(s.cleanups) == 0 {
			s.mu.Unlock()
			break
		}
		f := s.cleanups[len(s.cleanups)-1]
		s.cleanups = s.cleanups[:len(s.cleanups)-1]
		s.mu.Unlock()
		f()
	}
	os.RemoveAll(s.dir)
}
