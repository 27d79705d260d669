package chart_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// monitoringArgs render the dashboard and the alerts (all of them: the
// audit alert needs audit.enabled).
var monitoringArgs = []string{
	"--set", "monitoring.grafanaDashboard.enabled=true",
	"--set", "monitoring.prometheusRule.enabled=true",
	"--set", "audit.enabled=true",
}

// wantAlerts are the alerts of docs/operations.md#alerts and their severity.
var wantAlerts = map[string]string{
	"SignGateUnavailable":            "critical",
	"SignGateErrorsOrUndecided":      "critical",
	"SignGateLatencyNearTimeout":     "warning",
	"SignGateInvalidPolicies":        "warning",
	"SignGateCertificateExpiresSoon": "warning",
	"SignGateAuditFailing":           "warning",
	"SignGateTrustRootStale":         "warning",
	"SignGatePanics":                 "warning",
}

// promQL parses like Prometheus does by default.
var promQL = parser.NewParser(parser.Options{})

// metricFamilies reads internal/server/testdata/metrics.golden, the metric
// families the gate exposes ("NAME TYPE [condition]"), as name → type.
func metricFamilies(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "internal", "server", "testdata", "metrics.golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	families := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 {
			t.Fatalf("metrics.golden: malformed line %q", sc.Text())
		}
		families[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(families) == 0 {
		t.Fatal("metrics.golden lists no metric family")
	}
	return families
}

// checkPromQL parses expr with Prometheus's parser and checks that every
// metric it selects is one the gate exposes (a histogram's _bucket, _sum
// and _count series included) or up.
func checkPromQL(t *testing.T, where, expr string, families map[string]string) {
	t.Helper()
	ast, err := promQL.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
		return
	}
	selected := 0
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selected++
		name := vs.Name
		if name == "" {
			t.Errorf("%s: selector %s names no metric\n%s", where, vs, expr)
			return nil
		}
		if name == "up" {
			return nil
		}
		if _, ok := families[name]; ok {
			return nil
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && families[base] == "histogram" {
				return nil
			}
		}
		t.Errorf("%s: metric %s is not in internal/server/testdata/metrics.golden\n%s", where, name, expr)
		return nil
	})
	if selected == 0 {
		t.Errorf("%s: selects no metric\n%s", where, expr)
	}
}

// Both are opt-in: the default render has neither.
func TestMonitoringDisabledByDefault(t *testing.T) {
	t.Parallel()
	objs := render(t)
	if n := len(kinds(objs, "PrometheusRule")); n != 0 {
		t.Errorf("%d PrometheusRules by default, want 0", n)
	}
	for _, o := range kinds(objs, "ConfigMap") {
		if strings.Contains(string(o.raw), "grafana_dashboard") {
			t.Errorf("ConfigMap %s holds a Grafana dashboard by default", o.Metadata.Name)
		}
	}
}

// grafanaVariables replaces the dashboard's template variables with values
// a query could have after Grafana interpolated it.
var grafanaVariables = strings.NewReplacer(
	"${datasource}", "prometheus",
	"$__rate_interval", "2m",
	"$__interval", "1m",
	"$__range", "6h",
	"$namespace", releaseNamespace,
	"$job", "signgate",
)

// labelValues is a Grafana variable query label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

func TestMonitoringGrafanaDashboard(t *testing.T) {
	t.Parallel()
	families := metricFamilies(t)
	var cm corev1.ConfigMap
	for _, o := range kinds(render(t, monitoringArgs...), "ConfigMap") {
		if o.Metadata.Name == "signgate-dashboard" {
			cm = decode[corev1.ConfigMap](t, o)
		}
	}
	if cm.Name == "" {
		t.Fatal("no ConfigMap signgate-dashboard rendered")
	}
	if cm.Namespace != releaseNamespace || cm.Labels["grafana_dashboard"] != "1" || cm.Labels["app.kubernetes.io/part-of"] != "signgate" {
		t.Errorf("dashboard ConfigMap in %q labelled %v, want %s and the chart's labels plus grafana_dashboard: \"1\"", cm.Namespace, cm.Labels, releaseNamespace)
	}
	raw, ok := cm.Data["signgate.json"]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("dashboard ConfigMap data keys %v, want signgate.json", slices.Collect(maps.Keys(cm.Data)))
	}
	file, err := os.ReadFile(filepath.Join("files", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if raw != strings.TrimRight(string(file), "\n") {
		t.Error("signgate.json differs from files/grafana-dashboard.json")
	}

	type target struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	}
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	type panel struct {
		ID         int         `json:"id"`
		Type       string      `json:"type"`
		Title      string      `json:"title"`
		Datasource *datasource `json:"datasource"`
		Targets    []target    `json:"targets"`
		Panels     []panel     `json:"panels"`
	}
	var dash struct {
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(raw), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 36 {
		t.Errorf("dashboard uid %q title %q schemaVersion %d, want a uid, a title and schemaVersion >= 36", dash.UID, dash.Title, dash.SchemaVersion)
	}

	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
		var q string
		switch query := v.Query.(type) {
		case string:
			q = query
		case map[string]any:
			q, _ = query["query"].(string)
		}
		switch v.Type {
		case "datasource":
			if q != "prometheus" {
				t.Errorf("variable %s: data sources of type %q, want prometheus", v.Name, q)
			}
		case "query":
			m := labelValues.FindStringSubmatch(q)
			if m == nil {
				t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
				continue
			}
			checkPromQL(t, "variable "+v.Name, grafanaVariables.Replace(m[1]), families)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "namespace": "query", "job": "query"} {
		if vars[name] != typ {
			t.Errorf("variable %s of type %q, want %q", name, vars[name], typ)
		}
	}

	ids := map[int]string{}
	queries := 0
	var walk func([]panel)
	walk = func(panels []panel) {
		for _, p := range panels {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				where := fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)
				expr := grafanaVariables.Replace(tg.Expr)
				if strings.Contains(expr, "$") {
					t.Errorf("%s: unknown variable in %s", where, tg.Expr)
					continue
				}
				checkPromQL(t, where, expr, families)
				queries++
			}
		}
	}
	walk(dash.Panels)
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}

	// Every family the gate exposes is on the dashboard.
	for name := range families {
		if !strings.Contains(raw, name) {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

func TestMonitoringGrafanaDashboardOptions(t *testing.T) {
	t.Parallel()
	objs := render(t, "--set", "monitoring.grafanaDashboard.enabled=true",
		"--set", "monitoring.grafanaDashboard.namespace=grafana",
		"--set", "monitoring.grafanaDashboard.labels.grafana_dashboard=null",
		"--set", "monitoring.grafanaDashboard.labels.dashboards=signgate",
		"--set", "monitoring.grafanaDashboard.annotations.grafana_folder=Security")
	var cm corev1.ConfigMap
	for _, o := range kinds(objs, "ConfigMap") {
		if o.Metadata.Name == "signgate-dashboard" {
			cm = decode[corev1.ConfigMap](t, o)
		}
	}
	if cm.Namespace != "grafana" || cm.Labels["dashboards"] != "signgate" || cm.Annotations["grafana_folder"] != "Security" {
		t.Errorf("dashboard ConfigMap %s/%s labels %v annotations %v, want it in grafana with dashboards=signgate and grafana_folder=Security",
			cm.Namespace, cm.Name, cm.Labels, cm.Annotations)
	}
	if _, ok := cm.Labels["grafana_dashboard"]; ok {
		t.Errorf("labels %v: grafana_dashboard=null kept the default label", cm.Labels)
	}
	if n := len(kinds(objs, "PrometheusRule")); n != 0 {
		t.Errorf("%d PrometheusRules with only the dashboard enabled, want 0", n)
	}
}

// prometheusRule is the part of a PrometheusRule the tests read.
type prometheusRule struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

// ruleGroups validates the PrometheusRule's spec with Prometheus's rule
// file checker (expressions, durations, label names, annotation templates)
// and returns its rules.
func ruleGroups(t *testing.T, objs []object) (prometheusRule, []rulefmt.Rule) {
	t.Helper()
	found := kinds(objs, "PrometheusRule")
	if len(found) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(found))
	}
	var pr prometheusRule
	if err := yaml.Unmarshal(found[0].raw, &pr); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.LegacyValidation, promQL, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if groups == nil {
		t.Fatalf("rulefmt rejected the rules:\n%s", spec)
	}
	var rules []rulefmt.Rule
	for _, g := range groups.Groups {
		rules = append(rules, g.Rules...)
	}
	return pr, rules
}

func TestMonitoringPrometheusRule(t *testing.T) {
	t.Parallel()
	families := metricFamilies(t)
	pr, rules := ruleGroups(t, render(t, append(slices.Clone(monitoringArgs),
		"--set", "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
		"--set", "monitoring.prometheusRule.alertLabels.team=platform")...))
	if pr.Metadata.Name != "signgate" || pr.Metadata.Namespace != releaseNamespace ||
		pr.Metadata.Labels["release"] != "kube-prometheus-stack" || pr.Metadata.Labels["app.kubernetes.io/part-of"] != "signgate" {
		t.Errorf("PrometheusRule %s/%s labelled %v, want signgate in %s with the chart's labels plus release", pr.Metadata.Namespace, pr.Metadata.Name, pr.Metadata.Labels, releaseNamespace)
	}
	got := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("recording rule %s: want alerts only", r.Record)
			continue
		}
		got[r.Alert] = true
		severity, ok := wantAlerts[r.Alert]
		if !ok {
			t.Errorf("unexpected alert %s", r.Alert)
		}
		if r.For == 0 && r.Alert != "SignGatePanics" {
			t.Errorf("%s: no for", r.Alert)
		}
		if r.Labels["severity"] != severity || r.Labels["team"] != "platform" {
			t.Errorf("%s: labels %v, want severity %s and team platform", r.Alert, r.Labels, severity)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if want := "docs/operations.md#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook"], want) {
			t.Errorf("%s: runbook %q, want it to end in %s", r.Alert, r.Annotations["runbook"], want)
		}
		checkPromQL(t, "alert "+r.Alert, r.Expr, families)
		// Every selector is limited to the gate's series.
		ast, err := promQL.ParseExpr(r.Expr)
		if err != nil {
			continue // reported by checkPromQL
		}
		parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok {
				if !strings.Contains(vs.String(), `job="signgate"`) || !strings.Contains(vs.String(), `namespace="signgate-system"`) {
					t.Errorf("%s: selector %s does not select the chart's ServiceMonitor job", r.Alert, vs)
				}
			}
			return nil
		})
	}
	for name := range wantAlerts {
		if !got[name] {
			t.Errorf("alert %s missing", name)
		}
	}
}

// The thresholds that come from values: 80% of webhook.timeoutSeconds and
// three audit.interval; the audit alert only with audit.enabled; a
// selector for a gate scraped by something else than the ServiceMonitor.
func TestMonitoringPrometheusRuleValues(t *testing.T) {
	t.Parallel()
	exprs := func(t *testing.T, args ...string) map[string]string {
		t.Helper()
		_, rules := ruleGroups(t, render(t, append([]string{"--set", "monitoring.prometheusRule.enabled=true"}, args...)...))
		m := map[string]string{}
		for _, r := range rules {
			m[r.Alert] = r.Expr
		}
		return m
	}
	def := exprs(t)
	if _, ok := def["SignGateAuditFailing"]; ok {
		t.Error("SignGateAuditFailing rendered without audit.enabled")
	}
	if !strings.HasSuffix(def["SignGateLatencyNearTimeout"], "> 8") {
		t.Errorf("SignGateLatencyNearTimeout with the default webhook.timeoutSeconds 10: %s, want > 8", def["SignGateLatencyNearTimeout"])
	}
	custom := exprs(t, "--set", "webhook.timeoutSeconds=25", "--set", "audit.enabled=true", "--set", "audit.interval=1h30m",
		"--set", `monitoring.prometheusRule.selector=job="kubernetes-pods"\, app="signgate"`)
	if !strings.HasSuffix(custom["SignGateLatencyNearTimeout"], "> 20") {
		t.Errorf("SignGateLatencyNearTimeout with webhook.timeoutSeconds 25: %s, want > 20", custom["SignGateLatencyNearTimeout"])
	}
	if !strings.HasSuffix(custom["SignGateAuditFailing"], "> 16200") {
		t.Errorf("SignGateAuditFailing with audit.interval 1h30m: %s, want > 16200 (3 × 5400 s)", custom["SignGateAuditFailing"])
	}
	for name, expr := range custom {
		if strings.Contains(expr, `namespace="signgate-system"`) || !strings.Contains(expr, `{job="kubernetes-pods", app="signgate"`) {
			t.Errorf("%s with a selector: %s", name, expr)
		}
	}
	fractional := exprs(t, "--set", "audit.enabled=true", "--set", "audit.interval=2.5m")
	if !strings.HasSuffix(fractional["SignGateAuditFailing"], "> 450") {
		t.Errorf("SignGateAuditFailing with audit.interval 2.5m: %s, want > 450", fractional["SignGateAuditFailing"])
	}
}

func TestMonitoringSchema(t *testing.T) {
	t.Parallel()
	for _, set := range []string{
		"monitoring.enabled=true",
		"monitoring.grafanaDashboard.enabled=yes",
		"monitoring.grafanaDashboard.folder=x",
		"monitoring.grafanaDashboard.namespace=Not_A_Namespace",
		"monitoring.prometheusRule.enabled=yes",
		"monitoring.prometheusRule.runbookURL=",
		"monitoring.prometheusRule.rules=x",
	} {
		t.Run(set, func(t *testing.T) {
			t.Parallel()
			out, err := helm(helmBinary(t), "--set", set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded, want a schema error", set)
			}
			if !strings.Contains(string(out), "schema") {
				t.Errorf("helm template --set %s failed without naming the schema:\n%s", set, out)
			}
		})
	}
}
