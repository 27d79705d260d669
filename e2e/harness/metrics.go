//go:build e2e

package harness

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Counter scrapes s's /metrics and returns the sum of the series of metric
// whose labels include every pair in labels (0 when none matches). It reads
// the Prometheus text format line by line: enough for counters, whose
// label values signgate never gives commas or quotes.
func (s *Signgate) Counter(ctx context.Context, metric string, labels map[string]string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.MetricsURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", s.MetricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: %s", s.MetricsURL, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var value string
		if rest, ok := strings.CutPrefix(line, metric+" "); ok && len(labels) == 0 {
			value = rest // a series without labels
		} else {
			rest, ok := strings.CutPrefix(line, metric+"{")
			if !ok {
				continue
			}
			set, v, ok := strings.Cut(rest, "} ")
			if !ok || !hasLabels(set, labels) {
				continue
			}
			value = v
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("scrape %s: %q: %w", s.MetricsURL, line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scrape %s: %w", s.MetricsURL, err)
	}
	return sum, nil
}

// hasLabels reports whether the label set `a="x",b="y"` has every pair of want.
func hasLabels(set string, want map[string]string) bool {
	have := map[string]string{}
	for _, kv := range strings.Split(set, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			have[k] = strings.Trim(v, `"`)
		}
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
