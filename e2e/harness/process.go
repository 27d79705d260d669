//go:build e2e

package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// hangGuard bounds every wait in the harness: a process becoming ready, a
// CRD being established, the webhooks answering, one API request. It only
// stops a hung run; it is sized so that a healthy component on a loaded
// 2-core machine never meets it, and no outcome is decided by it.
const hangGuard = 3 * time.Minute

// Process is one started program whose output goes to a log file.
type Process struct {
	Name    string // short name used in messages and the log file name
	LogPath string // stdout and stderr, appended across restarts

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// procSpec says how to start a Process.
type procSpec struct {
	name  string   // log file is <logDir>/<name>.log
	bin   string   // absolute path or a name looked up in PATH
	args  []string //
	env   []string // added to the harness's environment
	dir   string   // working directory; "" = logDir
	grace time.Duration
}

// startProcess starts spec's program and registers its teardown with tb:
// SIGTERM, then SIGKILL after spec.grace (default 2s). When tb has failed,
// the teardown also prints the last lines of the program's log.
func startProcess(tb TB, logDir string, spec procSpec) (*Process, error) {
	logPath := filepath.Join(logDir, spec.name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", spec.name, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(spec.bin, spec.args...)
	cmd.Dir = spec.dir
	if cmd.Dir == "" {
		cmd.Dir = logDir
	}
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig kills the program if the harness dies without running its
	// cleanups (go test's timeout panic, a kill -9): no strays on the machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(f, "--- %s: %s %s\n", time.Now().Format(time.RFC3339), spec.bin, strings.Join(spec.args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	p := &Process{Name: spec.name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	grace := spec.grace
	if grace == 0 {
		grace = 2 * time.Second
	}
	tb.Cleanup(func() {
		p.Stop(grace)
		if tb.Failed() {
			tb.Logf("--- last lines of %s (%s):\n%s", p.Name, p.LogPath, p.Tail(40))
		}
	})
	return p, nil
}

// Exited reports whether the program has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs. It returns once the
// program is gone. Safe to call more than once.
func (p *Process) Stop(grace time.Duration) {
	p.stop.Do(func() {
		if exited, _ := p.Exited(); exited {
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// Tail returns the last n lines of the program's log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.LogPath, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// waitReady polls check every 100ms until it succeeds or the program
// exits; hangGuard only ends a wait that would otherwise never end. The
// last check error is part of the returned error.
func (p *Process) waitReady(ctx context.Context, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	var last error
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("wait for %s: exited (%v); log %s:\n%s", p.Name, err, p.LogPath, p.Tail(20))
		}
		// One probe may hang (a half-started server that accepts and
		// never answers); bound it so that the next one is sent.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("wait for %s to become ready: still not ready after %s (hang guard): %v; log %s:\n%s", p.Name, hangGuard, last, p.LogPath, p.Tail(20))
			}
			return fmt.Errorf("wait for %s: %w", p.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
