package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// decision is the outcome for one object, as in the JSON output.
type decision string

const (
	admitted  decision = "admitted"  // the webhook would let it in (possibly with warnings)
	denied    decision = "denied"    // the webhook would reject it
	undecided decision = "undecided" // registry trouble: the webhook would deny with "retry"
)

// report is the result of one check run; its JSON form is the stable machine
// format documented in docs/check-output.md. Add fields, never rename them.
type report struct {
	APIVersion string          `json:"apiVersion"` // signgate.dev/v1alpha1
	Kind       string          `json:"kind"`       // CheckReport
	Offline    bool            `json:"offline"`
	Objects    []objectResult  `json:"objects"`
	Skipped    []skippedObject `json:"skipped"`
	Summary    summary         `json:"summary"`
}

type objectResult struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Source    source   `json:"source"`
	Decision  decision `json:"decision"`
	// Messages are the reasons for a denial (or for undecided), one per
	// line of the webhook's message, in the webhook's words.
	Messages []string `json:"messages"`
	// Warnings are the admission warnings of both webhooks (kubectl shows
	// them as "Warning: …"), including offline notes.
	Warnings []string `json:"warnings"`
	// Audit are the audit annotations the webhook would record, "key=value".
	Audit  []string      `json:"audit"`
	Images []imageResult `json:"images"`
	// Findings are the lines of Messages, Warnings and Audit as structured
	// values, each once, in the order the gate gives them (mutate, then
	// validate; by severity, then message).
	Findings []finding `json:"findings"`
}

// finding is one admission.Finding (docs/check-output.md lists the codes).
type finding struct {
	Severity    string   `json:"severity"` // deny, retry, warn, audit
	Code        string   `json:"code"`     // stable reason code
	Field       string   `json:"field,omitempty"`
	Image       string   `json:"image,omitempty"`
	Policy      string   `json:"policy,omitempty"`
	Authorities []string `json:"authorities,omitempty"`
	Check       string   `json:"check,omitempty"`
	AuditKey    string   `json:"auditKey,omitempty"` // audit: the annotation key, as in Audit's "key=line"
	Message     string   `json:"message"`            // the line, as in Messages, Warnings or Audit
}

type imageResult struct {
	Path     string `json:"path"`     // spec.containers[0].image, spec.template.spec.…
	Original string `json:"original"` // as written in the manifest
	Pinned   string `json:"pinned"`   // as the webhook would store it; "" if it has no digest
	// Decision is what the image's own findings make of the object:
	// denied when one of them denies it, undecided when one is undecided.
	Decision decision `json:"decision"`
}

type skippedObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Source    source `json:"source"`
	Reason    string `json:"reason"`
}

type summary struct {
	Objects   int `json:"objects"`
	Admitted  int `json:"admitted"`
	Denied    int `json:"denied"`
	Undecided int `json:"undecided"`
	Skipped   int `json:"skipped"`
}

func newReport(offline bool) *report {
	return &report{
		APIVersion: "signgate.dev/v1alpha1",
		Kind:       "CheckReport",
		Offline:    offline,
		Objects:    []objectResult{},
		Skipped:    []skippedObject{},
	}
}

func (r *report) add(o objectResult) {
	r.Objects = append(r.Objects, o)
	r.Summary.Objects++
	switch o.Decision {
	case admitted:
		r.Summary.Admitted++
	case denied:
		r.Summary.Denied++
	case undecided:
		r.Summary.Undecided++
	}
}

func (r *report) skip(s skippedObject) {
	r.Skipped = append(r.Skipped, s)
	r.Summary.Skipped++
}

// exitCode: 1 if anything is denied, else 3 if anything is undecided, else 0.
// A denial is a definite answer and wins over registry trouble elsewhere.
func (r *report) exitCode() int {
	switch {
	case r.Summary.Denied > 0:
		return exitDenied
	case r.Summary.Undecided > 0:
		return exitUndecided
	}
	return exitOK
}

func writeJSON(w io.Writer, r *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// palette colors the verdict words; the zero value writes plain text.
type palette struct{ on bool }

const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiReset  = "\x1b[0m"
)

func (p palette) paint(color, s string) string {
	if !p.on {
		return s
	}
	return color + s + ansiReset
}

// writeText writes one block per object, then the skipped objects and a
// summary line:
//
//	Pod team-a/web (deploy.yaml:12)
//	  DENIED    spec.containers[0].image: …
//	  WARN      …
//	  image     spec.containers[0].image  nginx:1.27 -> nginx:1.27@sha256:…
func writeText(w io.Writer, r *report, p palette) {
	for _, o := range r.Objects {
		writeObject(w, o, p)
		fmt.Fprintln(w)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "%s %s (%s)\n  %s %s\n\n", s.Kind, objectName(s.Namespace, s.Name), s.Source, p.paint(ansiDim, "SKIPPED  "), s.Reason)
	}
	sum := r.Summary
	line := fmt.Sprintf("%d checked: %d admitted, %d denied, %d undecided; %d skipped", sum.Objects, sum.Admitted, sum.Denied, sum.Undecided, sum.Skipped)
	if r.Offline {
		line += " (offline: signatures not checked)"
	}
	fmt.Fprintln(w, line)
}

func writeObject(w io.Writer, o objectResult, p palette) {
	fmt.Fprintf(w, "%s %s (%s)\n", p.paint(ansiBold, o.Kind), objectName(o.Namespace, o.Name), o.Source)
	switch o.Decision {
	case admitted:
		fmt.Fprintf(w, "  %s\n", p.paint(ansiGreen, "ADMITTED"))
	case denied:
		writeLines(w, p.paint(ansiRed, "DENIED   "), o.Messages)
	case undecided:
		writeLines(w, p.paint(ansiYellow, "UNDECIDED"), o.Messages)
	}
	writeLines(w, p.paint(ansiYellow, "WARN     "), o.Warnings)
	writeLines(w, p.paint(ansiDim, "AUDIT    "), o.Audit)
	for _, img := range o.Images {
		switch {
		case img.Pinned == "":
			fmt.Fprintf(w, "  image     %s  %s (not pinned)\n", img.Path, img.Original)
		case img.Pinned == img.Original:
			fmt.Fprintf(w, "  image     %s  %s\n", img.Path, img.Original)
		default:
			fmt.Fprintf(w, "  image     %s  %s -> %s\n", img.Path, img.Original, img.Pinned)
		}
	}
}

// writeLines writes one labelled line per entry; newlines inside an entry
// (registry error texts carry some) are folded so every entry stays one
// line of output.
func writeLines(w io.Writer, label string, lines []string) {
	for _, l := range lines {
		fmt.Fprintf(w, "  %s %s\n", label, strings.Join(strings.Fields(l), " "))
	}
}

func objectName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// splitMessage turns a webhook message into lines: the gate joins its
// reasons with newlines (or "; " when one line is needed).
func splitMessage(msg string) []string {
	out := []string{}
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
