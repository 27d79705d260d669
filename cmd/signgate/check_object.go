package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/policy"
)

// admissionGate is what check needs from admission.Gate: the decisions of
// the two webhooks, without HTTP, with the findings behind them.
type admissionGate interface {
	MutateFindings(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, []admission.Finding)
	ValidateFindings(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, []admission.Finding)
}

// checkTimeout bounds the registry work for one object, like the webhook's
// default timeoutSeconds (10s) bounds one review.
const checkTimeout = 10 * time.Second

// checkUser is the requesting user check puts in its AdmissionRequests.
const checkUser = "signgate-check"

// podKind describes a kind that carries a pod spec: where the spec is, and
// the resource the API server would name in the AdmissionRequest.
type podKind struct {
	Prefix   string // dot path of the pod spec, as policy.ImageField.Path wants it
	Resource string
}

// podKinds are the kinds the webhooks evaluate (docs/admission.md), by group and
// kind; any version of the group is accepted and sent as v1, the version the
// webhooks are registered for (the API server converts the same way).
var podKinds = map[schema.GroupKind]podKind{
	{Group: "", Kind: "Pod"}:                   {"spec", "pods"},
	{Group: "", Kind: "PodTemplate"}:           {"template.spec", "podtemplates"},
	{Group: "", Kind: "ReplicationController"}: {"spec.template.spec", "replicationcontrollers"},
	{Group: "apps", Kind: "Deployment"}:        {"spec.template.spec", "deployments"},
	{Group: "apps", Kind: "ReplicaSet"}:        {"spec.template.spec", "replicasets"},
	{Group: "apps", Kind: "StatefulSet"}:       {"spec.template.spec", "statefulsets"},
	{Group: "apps", Kind: "DaemonSet"}:         {"spec.template.spec", "daemonsets"},
	{Group: "batch", Kind: "Job"}:              {"spec.template.spec", "jobs"},
	{Group: "batch", Kind: "CronJob"}:          {"spec.jobTemplate.spec.template.spec", "cronjobs"},
}

func groupKind(apiVersion, kind string) schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return schema.GroupKind{Group: gv.Group, Kind: kind}
}

func podSpecPrefix(apiVersion, kind string) (string, bool) {
	k, ok := podKinds[groupKind(apiVersion, kind)]
	return k.Prefix, ok
}

// checkObject runs one object through the gate the way the API server
// would: /mutate on the object as written, the JSON patch applied, then
// /validate on the patched object.
func checkObject(ctx context.Context, gate admissionGate, m manifest, namespace string, seq int) (objectResult, error) {
	res := objectResult{Kind: m.Kind, Namespace: namespace, Name: m.Name, Source: m.At, Messages: []string{}, Warnings: []string{}, Audit: []string{}, Findings: []finding{}}
	obj, err := withNamespace(m.Raw, namespace)
	if err != nil {
		return res, err
	}
	before, err := objectImages(m, obj)
	if err != nil {
		return res, err
	}
	mres, mfindings := review(ctx, gate.MutateFindings, admissionRequest(m, namespace, obj, fmt.Sprintf("check-%d-mutate", seq)))
	res.Warnings = appendUnique(res.Warnings, responseWarnings(mres)...)
	res.Findings = appendFindings(res.Findings, mfindings)
	final := obj
	if mres != nil && mres.Allowed {
		if final, err = applyPatch(obj, mres); err != nil {
			return res, err
		}
	}
	after, err := objectImages(m, final)
	if err != nil {
		return res, err
	}
	prefix, _ := podSpecPrefix(m.APIVersion, m.Kind)
	res.Images = pinnedImages(prefix, before, after)
	if mres == nil || !mres.Allowed {
		// The API server stops at a mutating denial; so does check.
		res.Decision, res.Messages = verdict(mres)
		return res, nil
	}
	vres, vfindings := review(ctx, gate.ValidateFindings, admissionRequest(m, namespace, final, fmt.Sprintf("check-%d-validate", seq)))
	res.Decision, res.Messages = verdict(vres)
	res.Warnings = appendUnique(res.Warnings, responseWarnings(vres)...)
	res.Findings = appendFindings(res.Findings, vfindings)
	if vres != nil {
		res.Audit = auditLines(vres.AuditAnnotations)
	}
	return res, nil
}

// review calls one webhook's decision with the deadline the API server
// would give it.
func review(ctx context.Context, decide func(context.Context, *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, []admission.Finding), req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, []admission.Finding) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	return decide(ctx, req)
}

// verdict classifies a response with admission.Decision: undecided (503,
// "retry") stays undecided; a denial or a gate error is a denial, as the API
// server would reject the object either way.
func verdict(r *admissionv1.AdmissionResponse) (decision, []string) {
	d := admission.Decision(r)
	switch {
	case d == "allowed":
		return admitted, []string{}
	case r == nil:
		return denied, []string{"internal error: no admission response"}
	case r.Result == nil:
		return denied, []string{}
	case d == "undecided":
		return undecided, appendUnique([]string{}, splitMessage(r.Result.Message)...)
	}
	return denied, appendUnique([]string{}, splitMessage(r.Result.Message)...)
}

func responseWarnings(r *admissionv1.AdmissionResponse) []string {
	if r == nil {
		return nil
	}
	return r.Warnings
}

func appendUnique(list []string, add ...string) []string {
	for _, s := range add {
		seen := false
		for _, l := range list {
			seen = seen || l == s
		}
		if !seen {
			list = append(list, s)
		}
	}
	return list
}

// appendFindings adds the gate's findings to list, each once: a finding
// is the same as another when it has the same severity, audit key and
// message, as the lines of the answers are the same when their text is.
func appendFindings(list []finding, add []admission.Finding) []finding {
	for _, f := range add {
		list = appendFinding(list, finding{
			Severity: string(f.Severity), Code: string(f.Code), Field: f.Field, Image: f.Image,
			Policy: f.Policy, Authorities: f.Authorities, Check: f.Check, AuditKey: f.AuditKey, Message: f.Message,
		})
	}
	return list
}

func appendFinding(list []finding, f finding) []finding {
	for _, l := range list {
		if l.Severity == f.Severity && l.AuditKey == f.AuditKey && l.Message == f.Message {
			return list
		}
	}
	return append(list, f)
}

// auditLines lists audit annotations as "key=line", one per line of the
// value (the gate joins its findings with newlines).
func auditLines(annotations map[string]string) []string {
	out := []string{}
	for k, v := range annotations {
		for _, l := range splitMessage(v) {
			out = append(out, k+"="+l)
		}
	}
	sort.Strings(out)
	return out
}

// withNamespace sets metadata.namespace, as the API server does before
// admission for a namespaced create.
func withNamespace(raw []byte, namespace string) ([]byte, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("decode object: %w", err)
	}
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	meta["namespace"] = namespace
	return json.Marshal(obj)
}

// admissionRequest is the CREATE request the API server would send for m.
// DryRun is set: nothing is persisted, and the webhooks decide dry runs
// exactly like real requests (docs/admission.md).
func admissionRequest(m manifest, namespace string, obj []byte, uid string) *admissionv1.AdmissionRequest {
	gk := groupKind(m.APIVersion, m.Kind)
	gvk := metav1.GroupVersionKind{Group: gk.Group, Version: "v1", Kind: gk.Kind}
	gvr := metav1.GroupVersionResource{Group: gk.Group, Version: "v1", Resource: podKinds[gk].Resource}
	dryRun := true
	name := m.Name
	if strings.HasSuffix(name, "*") { // generateName: the API server has not named it yet
		name = ""
	}
	return &admissionv1.AdmissionRequest{
		UID:             types.UID(uid),
		Kind:            gvk,
		Resource:        gvr,
		RequestKind:     &gvk,
		RequestResource: &gvr,
		Name:            name,
		Namespace:       namespace,
		Operation:       admissionv1.Create,
		UserInfo:        authenticationv1.UserInfo{Username: checkUser},
		Object:          runtime.RawExtension{Raw: obj},
		DryRun:          &dryRun,
		Options:         runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","dryRun":["All"]}`)},
	}
}

// applyPatch applies the mutating webhook's JSON patch, as the API server
// would. A patch check cannot apply is a gate bug: an error, not a decision.
func applyPatch(obj []byte, r *admissionv1.AdmissionResponse) ([]byte, error) {
	if len(r.Patch) == 0 {
		return obj, nil
	}
	if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
		return nil, fmt.Errorf("mutate: unsupported patch type %v", r.PatchType)
	}
	p, err := jsonpatch.DecodePatch(r.Patch)
	if err != nil {
		return nil, fmt.Errorf("mutate: decode patch: %w", err)
	}
	out, err := p.Apply(obj)
	if err != nil {
		return nil, fmt.Errorf("mutate: apply patch: %w", err)
	}
	return out, nil
}

// objectImages lists the images of an object's pod spec with their field
// paths, through the same visitor the webhooks use.
func objectImages(m manifest, obj []byte) ([]policy.ImageField, error) {
	prefix, _ := podSpecPrefix(m.APIVersion, m.Kind)
	var doc any
	if err := json.Unmarshal(obj, &doc); err != nil {
		return nil, fmt.Errorf("decode object: %w", err)
	}
	for _, field := range strings.Split(prefix, ".") {
		node, _ := doc.(map[string]any)
		doc = node[field]
	}
	if doc == nil {
		return nil, nil
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var spec corev1.PodSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	return policy.Images(&spec), nil
}

// pinnedImages pairs each image before mutation with the image after it.
// The patch only replaces image strings, so the lists line up by position.
func pinnedImages(prefix string, before, after []policy.ImageField) []imageResult {
	out := []imageResult{}
	for i, b := range before {
		img := imageResult{Path: b.Path(prefix), Original: b.Image}
		if i < len(after) && hasDigest(after[i].Image) {
			img.Pinned = after[i].Image
		}
		out = append(out, img)
	}
	return out
}

func hasDigest(ref string) bool {
	return strings.Contains(ref, "@sha256:") || strings.Contains(ref, "@sha512:")
}
