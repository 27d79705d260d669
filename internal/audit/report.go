package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/signgate/signgate/admission"
)

// PolicyReportGVR is the Kubernetes Policy WG's PolicyReport
// (wgpolicyk8s.io/v1alpha2), which Kyverno and Kubewarden write and Policy
// Reporter and other dashboards read.
var PolicyReportGVR = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "policyreports"}

const (
	// ReportName is the name of signgate's PolicyReport in each namespace.
	ReportName = "signgate"
	// ManagedByLabel marks the reports signgate writes (value "signgate"),
	// so that the ones of namespaces with nothing left are found and
	// deleted.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "signgate"
	// Source is the results' source.
	Source = "signgate"
	// MaxResults bounds a report: an object stays far below etcd's
	// request limit (1.5 MiB). Past it the summary still counts every
	// result and the report is annotated as truncated.
	MaxResults = 1000
	// TruncatedAnnotation is set on a report with more results than
	// MaxResults: its value is the number left out.
	TruncatedAnnotation = "signgate.dev/results-truncated"
)

// Evaluation is one object's outcome through both webhooks.
type Evaluation struct {
	Object   Object
	Findings []admission.Finding
	// Err is an object the gate could not evaluate (a patch it could not
	// apply: a gate bug), reported as an error result.
	Err error
}

// Result values of the PolicyReport API.
const (
	resultPass  = "pass"
	resultFail  = "fail"
	resultWarn  = "warn"
	resultError = "error"
)

// Results is e as PolicyReport results: one per policy the findings name
// (PolicyName), with the lines a denial or warning would carry; fail for
// a denial, error for an undecided answer (registry trouble), warn for a
// warn or audit finding. An object without findings gets one pass result
// (policy "signgate").
func Results(e Evaluation, now time.Time) []map[string]any {
	resource := map[string]any{"apiVersion": e.Object.APIVersion, "kind": e.Object.Kind, "namespace": e.Object.Namespace, "name": e.Object.Name}
	if e.Object.UID != "" {
		resource["uid"] = string(e.Object.UID)
	}
	result := func(policy, rule, res, msg string, props map[string]any) map[string]any {
		r := map[string]any{
			"source":    Source,
			"policy":    policy,
			"rule":      rule,
			"result":    res,
			"scored":    true,
			"severity":  severityOf(res),
			"category":  categoryOf(policy),
			"message":   msg,
			"timestamp": map[string]any{"seconds": now.Unix(), "nanos": int64(0)},
			"resources": []any{resource},
		}
		if len(props) > 0 {
			r["properties"] = props
		}
		return r
	}
	if e.Err != nil {
		return []map[string]any{result(Source, "evaluate", resultError, "signgate could not evaluate this object: "+e.Err.Error(), nil)}
	}
	type group struct {
		policy, res, rule, mode string
		lines, images           []string
	}
	var groups []*group
	byPolicy := map[string]*group{}
	seen := map[string]bool{}
	for _, f := range e.Findings {
		key := string(f.Severity) + "\x00" + string(f.Code) + "\x00" + f.Message
		if seen[key] {
			continue // mutate and validate can say the same
		}
		seen[key] = true
		name := f.PolicyName()
		g := byPolicy[name]
		if g == nil {
			g = &group{policy: name}
			byPolicy[name] = g
			groups = append(groups, g)
		}
		if res := resultOf(f.Severity); g.res == "" || rank(res) > rank(g.res) {
			g.res, g.rule, g.mode = res, string(f.Code), f.Mode()
		}
		g.lines = append(g.lines, f.Message)
		if f.Image != "" && !contains(g.images, f.Image) {
			g.images = append(g.images, f.Image)
		}
	}
	if len(groups) == 0 {
		return []map[string]any{result(Source, "admission", resultPass, "admitted: signatures and pod checks pass", nil)}
	}
	out := make([]map[string]any, 0, len(groups))
	for _, g := range groups {
		props := map[string]any{"mode": g.mode}
		if len(g.images) > 0 {
			props["images"] = strings.Join(g.images, ", ")
		}
		out = append(out, result(g.policy, g.rule, g.res, strings.Join(g.lines, "\n"), props))
	}
	return out
}

// Reports groups the evaluations' results into one PolicyReport per
// namespace, named ReportName: the whole report, replacing the last one.
func Reports(evals []Evaluation, now time.Time) map[string]*unstructured.Unstructured {
	byNS := map[string][]any{}
	var namespaces []string
	for _, e := range evals {
		ns := e.Object.Namespace
		if _, ok := byNS[ns]; !ok {
			namespaces = append(namespaces, ns)
			byNS[ns] = []any{}
		}
		for _, r := range Results(e, now) {
			byNS[ns] = append(byNS[ns], r)
		}
	}
	out := map[string]*unstructured.Unstructured{}
	for _, ns := range namespaces {
		results := byNS[ns]
		summary := map[string]any{"pass": int64(0), "fail": int64(0), "warn": int64(0), "error": int64(0), "skip": int64(0)}
		for _, r := range results {
			res := r.(map[string]any)["result"].(string)
			summary[res] = summary[res].(int64) + 1
		}
		// Failures first, so a truncated report keeps what matters.
		sort.SliceStable(results, func(i, j int) bool {
			return rank(results[i].(map[string]any)["result"].(string)) > rank(results[j].(map[string]any)["result"].(string))
		})
		r := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": PolicyReportGVR.GroupVersion().String(),
			"kind":       "PolicyReport",
			"metadata": map[string]any{
				"name":      ReportName,
				"namespace": ns,
				"labels":    map[string]any{ManagedByLabel: managedBy},
			},
			"summary": summary,
		}}
		if len(results) > MaxResults {
			r.SetAnnotations(map[string]string{TruncatedAnnotation: fmt.Sprint(len(results) - MaxResults)})
			results = results[:MaxResults]
		}
		r.Object["results"] = results
		out[ns] = r
	}
	return out
}

// Write makes the cluster's signgate PolicyReports those of reports:
// created or replaced (never appended to), left alone when they already
// say the same (but for the results' timestamps, which then keep saying
// since when), and deleted in the namespaces reports has none for.
func Write(ctx context.Context, dyn dynamic.Interface, reports map[string]*unstructured.Unstructured) error {
	existing := map[string]*unstructured.Unstructured{} // namespace → report
	err := ListChunked(ctx, dyn.Resource(PolicyReportGVR), 500, func(u *unstructured.Unstructured) error {
		if u.GetName() == ReportName && u.GetLabels()[ManagedByLabel] == managedBy {
			existing[u.GetNamespace()] = u
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list PolicyReports: %w (is the wgpolicyk8s.io CRD installed?)", err)
	}
	namespaces := make([]string, 0, len(reports))
	for ns := range reports {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	var errs []string
	for _, ns := range namespaces {
		r := reports[ns].DeepCopy()
		ri := dyn.Resource(PolicyReportGVR).Namespace(ns)
		var err error
		if cur, ok := existing[ns]; ok {
			if sameReport(cur, r) {
				continue // nothing changed: no write (and the timestamps say since when)
			}
			next := r.DeepCopy()
			next.SetResourceVersion(cur.GetResourceVersion())
			_, err = ri.Update(ctx, next, metav1.UpdateOptions{})
			if apierrors.IsNotFound(err) { // deleted since the list: create it again
				_, err = ri.Create(ctx, r, metav1.CreateOptions{})
			}
		} else {
			_, err = ri.Create(ctx, r, metav1.CreateOptions{})
		}
		if apierrors.IsNotFound(err) && ctx.Err() == nil {
			continue // the namespace is gone
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("namespace %s: %v", ns, err))
		}
	}
	for ns := range existing {
		if _, ok := reports[ns]; ok {
			continue
		}
		err := dyn.Resource(PolicyReportGVR).Namespace(ns).Delete(ctx, ReportName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Sprintf("delete the report of namespace %s: %v", ns, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("write PolicyReports: %s", strings.Join(errs, "; "))
	}
	return nil
}

// sameReport reports whether cur (as stored) already says what next
// says: the same summary, truncation and results but for their
// timestamps.
func sameReport(cur, next *unstructured.Unstructured) bool {
	if cur.GetAnnotations()[TruncatedAnnotation] != next.GetAnnotations()[TruncatedAnnotation] {
		return false
	}
	norm := func(u *unstructured.Unstructured) (any, error) {
		// Through JSON, so stored numbers (int64, float64) and ours compare
		// alike.
		b, err := json.Marshal(map[string]any{"summary": u.Object["summary"], "results": u.Object["results"]})
		if err != nil {
			return nil, err
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		results, _ := v["results"].([]any)
		for _, r := range results {
			if m, ok := r.(map[string]any); ok {
				delete(m, "timestamp")
			}
		}
		return v, nil
	}
	a, errA := norm(cur)
	b, errB := norm(next)
	return errA == nil && errB == nil && reflect.DeepEqual(a, b)
}

func resultOf(s admission.Severity) string {
	switch s {
	case admission.SeverityDeny:
		return resultFail
	case admission.SeverityRetry:
		return resultError
	}
	return resultWarn
}

func rank(result string) int {
	switch result {
	case resultFail:
		return 3
	case resultError:
		return 2
	case resultWarn:
		return 1
	}
	return 0
}

func severityOf(result string) string {
	switch result {
	case resultFail:
		return "high"
	case resultError, resultWarn:
		return "medium"
	}
	return "info"
}

func categoryOf(policy string) string {
	switch {
	case policy == "PodSecurity":
		return "Pod Security"
	case strings.HasPrefix(policy, "hardening/"):
		return "Hardening"
	case policy == Source:
		return "Admission"
	}
	return "Image signatures"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
