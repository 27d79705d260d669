package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/signgate/signgate/admission"
)

// admissionGate is what check needs from admission.Gate: an object
// through both webhooks, with the findings and images behind the answers.
type admissionGate interface {
	DryRun(ctx context.Context, req *admissionv1.AdmissionRequest, timeout time.Duration) (admission.DryRun, error)
}

// checkTimeout bounds the registry work of each webhook for one object,
// like the webhooks' default timeoutSeconds (10s) bounds one review.
const checkTimeout = 10 * time.Second

// checkUser is the requesting user check puts in its AdmissionRequests.
const checkUser = "signgate-check"

// checkObject runs one object of kind k through the gate the way the API
// server would.
func checkObject(ctx context.Context, gate admissionGate, m manifest, k admission.Kind, namespace string, seq int) (objectResult, error) {
	res := objectResult{Kind: m.Kind, Namespace: namespace, Name: m.Name, Source: m.At, Messages: []string{}, Warnings: []string{}, Audit: []string{}, Findings: []finding{}, Images: []imageResult{}}
	obj, err := withNamespace(m.Raw, namespace)
	if err != nil {
		return res, err
	}
	name := m.Name
	if strings.HasSuffix(name, "*") { // generateName: the API server has not named it yet
		name = ""
	}
	run, err := gate.DryRun(ctx, admission.DryRunCreate(k, namespace, name, obj, types.UID(fmt.Sprintf("check-%d", seq)), checkUser), checkTimeout)
	if err != nil {
		return res, err
	}
	for _, img := range run.Images {
		res.Images = append(res.Images, imageResult{Path: img.Field, Original: img.Image, Pinned: img.Pinned, Decision: imageDecision(img.Severity)})
	}
	res.Findings = appendFindings(res.Findings, run.Findings)
	res.Warnings = appendUnique(res.Warnings, run.Mutate.Warnings...)
	if run.Validate == nil {
		// The API server stops at a mutating denial; so does check.
		res.Decision, res.Messages = verdict(run.Mutate)
		return res, nil
	}
	res.Decision, res.Messages = verdict(run.Validate)
	res.Warnings = appendUnique(res.Warnings, run.Validate.Warnings...)
	res.Audit = auditLines(run.Validate.AuditAnnotations)
	return res, nil
}

// imageDecision is what an image's strongest finding makes of the object.
func imageDecision(s admission.Severity) decision {
	switch s {
	case admission.SeverityDeny:
		return denied
	case admission.SeverityRetry:
		return undecided
	}
	return admitted
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
