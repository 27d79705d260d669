package main

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/verifier"
)

// --offline runs the same Gate with a verifier that never touches a
// registry and answers every resolution and verification with an
// *verifier.UndecidedError wrapping errOffline, with the same phrase as
// its Reason (admission shows the Reason, never error text: "registry HOST
// not contacted: --offline, retry"). The gate then decides all it can
// without a registry — Pod Security, hardening, empty or invalid
// references, invalid policies, static fail, unmatchedImages — and reports
// every image that needed the registry as undecided, under its field path.
// offlineResult turns exactly those lines, and the "must be pinned by
// digest" denials of pod images that were not pinned because nothing was
// resolved, into warnings; nothing offline can make a signature count.
//
// TODO(admission): a Gate option (e.g. Options.Offline) that skips the
// registry and reports these images itself would let check drop the line
// matching below; until then the phrases are pinned by TestCheckOffline.

// errOffline is the cause the offline verifier gives for every operation.
var errOffline = errors.New("not contacted: --offline")

// offlineUndecided is the answer of the offline verifier for op on ref.
func offlineUndecided(op, ref string) error {
	return &verifier.UndecidedError{Op: op, Ref: ref, Reason: errOffline.Error(), Err: errOffline}
}

// offlineVerifier is the admission.Verifier of --offline. Digests resolve
// to themselves (no I/O needed); nothing else is known.
type offlineVerifier struct{}

func (offlineVerifier) Resolve(_ context.Context, ref name.Reference) (name.Digest, error) {
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	return name.Digest{}, offlineUndecided("resolve", ref.String())
}

func (offlineVerifier) Verify(_ context.Context, d name.Digest, _ verifier.AuthoritySet) (verifier.Result, error) {
	return verifier.Result{}, offlineUndecided("verify", d.String())
}

// The reason codes of the offline notes, in addition to admission's.
const (
	codeOfflineNotPinned   = "offline-not-pinned"   // a pod image not pinned: nothing was resolved
	codeOfflineNotVerified = "offline-not-verified" // an image whose signatures were not checked
)

// mustBePinned is the phrase of the validating webhook's denial of a pod
// image without a digest (admission/images.go). Offline, nothing was
// resolved, so that denial says nothing about the manifest.
const mustBePinned = ": must be pinned by digest"

// offlineResult rewrites a result checked with the offline verifier: the
// lines caused by the missing registry become one warning per image, and
// the decision is recomputed from the lines that remain.
func offlineResult(o objectResult) objectResult {
	unchecked := map[string]bool{} // image path → needed the registry
	keep := func(lines []string) []string {
		out := []string{}
		for _, l := range lines {
			if path, ok := offlineLine(o.Images, l); ok {
				unchecked[path] = true
				continue
			}
			out = append(out, l)
		}
		return out
	}
	o.Messages = keep(o.Messages)
	warnings := keep(o.Warnings)
	o.Audit = keep(o.Audit)
	findings := []finding{}
	for _, f := range o.Findings {
		if _, ok := offlineLine(o.Images, f.Message); !ok {
			findings = append(findings, f)
		}
	}
	note := func(img imageResult, code, line string) {
		warnings = append(warnings, line)
		findings = appendFinding(findings, finding{Severity: "warn", Code: code, Field: img.Path, Image: img.Original, Message: line})
	}
	for _, img := range o.Images {
		if img.Pinned == "" {
			note(img, codeOfflineNotPinned, img.Path+" "+strconv.Quote(img.Original)+": not pinned by digest (offline: not resolved)")
		}
		if unchecked[img.Path] {
			note(img, codeOfflineNotVerified, img.Path+" "+strconv.Quote(img.Original)+": signature not checked (offline)")
		}
	}
	o.Warnings = warnings
	o.Findings = findings
	if len(o.Messages) == 0 {
		o.Decision = admitted
	}
	return o
}

// offlineLine reports whether line (a message, a warning or an audit
// "key=line") is about one of the images and caused by the missing
// registry, and which image path it is about.
func offlineLine(images []imageResult, line string) (string, bool) {
	for _, img := range images {
		about := strings.HasPrefix(line, img.Path+" ") || strings.Contains(line, "="+img.Path+" ")
		if about && (strings.Contains(line, errOffline.Error()) || (img.Pinned == "" && strings.Contains(line, mustBePinned))) {
			return img.Path, true
		}
	}
	return "", false
}
