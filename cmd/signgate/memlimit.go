package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go runtime only knows the heap it has, not the container's memory
// limit: without a soft limit it lets the heap double before collecting,
// and a burst of large registry answers can push the process past the
// limit into the OOM killer while half of its heap is garbage. serve sets
// a soft limit (debug.SetMemoryLimit) a little below the container's, so
// that the collector works harder as the limit nears (docs/helm.md).
const (
	// memoryLimitEnv carries the container's memory limit in bytes; the
	// Helm chart sets it from resources.limits.memory (downward API).
	memoryLimitEnv = "SIGNGATE_MEMORY_LIMIT"
	cgroupV2Max    = "/sys/fs/cgroup/memory.max"
	cgroupV1Limit  = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	// memoryHeadroom is the share of the container limit given to the Go
	// runtime; the rest is for what the runtime does not count (stacks
	// above the limit, fragmentation, the binary's own pages).
	memoryHeadroom = 0.9
	// noLimit: cgroup v1 reports "unlimited" as a page-aligned number
	// near MaxInt64 (9223372036854771712); anything this large is none.
	noLimit = 1 << 62
)

// memoryLimit returns the soft memory limit for the Go runtime (0: set
// none) and where the container limit came from. GOMEMLIMIT in the
// environment wins: the runtime has applied it already, and the result
// is 0 with source "GOMEMLIMIT". Otherwise the first of
// $SIGNGATE_MEMORY_LIMIT (bytes), cgroup v2 memory.max and cgroup v1
// memory.limit_in_bytes that holds a limit gives it; "max", a huge value,
// an unreadable file or a malformed value mean no limit from that source.
func memoryLimit(readFile func(string) ([]byte, error), getenv func(string) string) (int64, string) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, "GOMEMLIMIT"
	}
	if n, ok := parseLimit(getenv(memoryLimitEnv)); ok {
		return withHeadroom(n), memoryLimitEnv
	}
	for _, path := range []string{cgroupV2Max, cgroupV1Limit} {
		b, err := readFile(path)
		if err != nil {
			continue
		}
		if n, ok := parseLimit(string(b)); ok {
			return withHeadroom(n), path
		}
		// The file exists and says "max" (or unlimited): this is the
		// cgroup in force, and it sets no limit.
		return 0, path
	}
	return 0, ""
}

func parseLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= noLimit {
		return 0, false
	}
	return n, true
}

func withHeadroom(n int64) int64 { return int64(math.Floor(float64(n) * memoryHeadroom)) }

// applyMemoryLimit sets the runtime's soft memory limit from the
// container's (memoryLimit) and logs what it did.
func applyMemoryLimit(log *slog.Logger) {
	limit, source := memoryLimit(os.ReadFile, os.Getenv)
	switch {
	case source == "GOMEMLIMIT":
		log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"), "bytes", debug.SetMemoryLimit(-1))
	case limit > 0:
		debug.SetMemoryLimit(limit)
		log.Info("memory limit set from the container's", "bytes", limit, "headroom", memoryHeadroom, "source", source)
	default:
		log.Info("no container memory limit found: the Go runtime runs without a soft memory limit", "source", source)
	}
}
