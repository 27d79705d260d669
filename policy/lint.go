package policy

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
	yamlv3 "go.yaml.in/yaml/v3"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// LintProblem is one problem of a policy file.
type LintProblem struct {
	File string
	Line int    // 1-based; the object's first line, or the field's
	What string // "ClusterImagePolicy corp", or "" for the file or document
	Msg  string
}

func (p LintProblem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.What != "" {
		return loc + ": " + p.What + ": " + p.Msg
	}
	return loc + ": " + p.Msg
}

// LintFile checks the ClusterImagePolicy, ImagePolicy and TrustRoot
// objects of one YAML (or JSON) file, each on its own, with the compiler
// the gate uses: unknown fields (with their line), wrong types, bad keys,
// globs, selectors, regular expressions, CEL conditions, thresholds,
// missing or conflicting fields. What lives outside an object — the
// Secret of a secretRef, the TrustRoot a keyless authority names — is not
// read. Other kinds (Namespace, Secret, ConfigMap, anything else) are
// skipped. Problems come in file order.
func LintFile(file string, data []byte) []LintProblem {
	var out []LintProblem
	r := utilyaml.NewYAMLReader(bufio.NewReaderSize(bytes.NewReader(data), 4096))
	line := 1
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			return append(out, LintProblem{File: file, Line: line, Msg: fmt.Sprintf("document %d: %v", n, err)})
		}
		first := line // the document's first line, blank or comment
		start := line + leadingLines(doc)
		line += bytes.Count(doc, []byte("\n")) + 1 // the reader drops the "---" line after a document
		if len(doc) > maxDocumentBytes {
			out = append(out, LintProblem{File: file, Line: start, Msg: fmt.Sprintf("document %d: larger than %d bytes", n, maxDocumentBytes)})
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			out = append(out, LintProblem{File: file, Line: start, Msg: fmt.Sprintf("document %d: %v", n, err)})
			continue
		}
		for _, p := range lintDocument(js) {
			p.File = file
			if p.field != "" {
				// fieldLine counts from the document's first line, the
				// blank and comment lines before its content included.
				p.Line = max(first-1+fieldLine(doc, p.field), start)
			} else {
				p.Line = start
			}
			out = append(out, p.LintProblem)
		}
	}
}

// leadingLines counts the blank and comment lines before a document's
// content, and the "---" separator the reader keeps.
func leadingLines(doc []byte) int {
	n := 0
	for l := range strings.Lines(string(doc)) {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			break
		}
		n++
	}
	return n
}

type lintProblem struct {
	LintProblem
	field string // dotted path of an unknown or mistyped field, if known
}

// ValidateObject checks one ClusterImagePolicy, ImagePolicy or TrustRoot
// (JSON, as an admission review carries it) as LintFile does; nil when it
// is valid, or for another kind.
func ValidateObject(js []byte) error {
	var msgs []string
	for _, p := range lintDocument(js) {
		msgs = append(msgs, p.Msg)
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// lintDocument checks one decoded document (a policy, a TrustRoot, or a
// v1 List of them).
func lintDocument(js []byte) []lintProblem {
	o := newObjects()
	if err := o.add(js); err != nil {
		if strings.Contains(err.Error(), " is not a ClusterImagePolicy, ImagePolicy, TrustRoot") {
			return nil // another kind: not ours to lint
		}
		return []lintProblem{{LintProblem: LintProblem{Msg: err.Error()}}}
	}
	var out []lintProblem
	decodeProblem := func(what string, err error) {
		p := lintProblem{LintProblem: LintProblem{What: what, Msg: err.Error()}}
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			p.field = m[1]
		}
		out = append(out, p)
	}
	for _, t := range o.trustRoots {
		what := KindTrustRoot + " " + t.Name
		if t.DecodeErr != nil {
			decodeProblem(what, t.DecodeErr)
			continue
		}
		if err := lintTrustRoot(t); err != nil {
			out = append(out, lintProblem{LintProblem: LintProblem{What: what, Msg: err.Error()}})
		}
	}
	c := &compiler{gateNamespace: "signgate-system", structural: true}
	for _, p := range o.policies {
		if p.DecodeErr != nil {
			decodeProblem(p.ID(), p.DecodeErr)
			continue
		}
		_, results := c.compile([]*policyObject{p})
		if err := results[0].Err; err != nil {
			for _, msg := range err.Problems {
				out = append(out, lintProblem{LintProblem: LintProblem{What: p.ID(), Msg: msg}})
			}
		}
	}
	return out
}

// unknownField finds the field of a strict decoding error:
// `unknown field "spec.imagess"`.
var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// lintTrustRoot checks what a TrustRoot holds on its own: exactly one
// source; an inline trusted_root.json parses; a TUF source's mirror,
// refresh interval and inline root.
func lintTrustRoot(t *trustRootObject) error {
	c := &compiler{structural: true, trustRootObjs: map[string]*trustRootObject{t.Name: t}}
	_, err := c.resolveTrustRoot(t.Name, &compileState{roots: map[string]root.TrustedMaterial{}})
	return err
}

// fieldLine finds the line (1-based, within doc) of a dotted field path
// such as "spec.authorities.key.dataa": the deepest key of the path that
// exists; 1 when none does.
func fieldLine(doc []byte, path string) int {
	var n yamlv3.Node
	if err := yamlv3.Unmarshal(doc, &n); err != nil || len(n.Content) == 0 {
		return 1
	}
	line := 1
	var walk func(node *yamlv3.Node, parts []string)
	walk = func(node *yamlv3.Node, parts []string) {
		if len(parts) == 0 || node == nil {
			return
		}
		switch node.Kind {
		case yamlv3.SequenceNode:
			for _, c := range node.Content {
				walk(c, parts)
			}
		case yamlv3.MappingNode:
			for i := 0; i+1 < len(node.Content); i += 2 {
				if node.Content[i].Value == parts[0] {
					if line < node.Content[i].Line || len(parts) == 1 {
						line = node.Content[i].Line
					}
					walk(node.Content[i+1], parts[1:])
				}
			}
		}
	}
	parts := strings.Split(path, ".")
	if len(parts) == 1 {
		// The strict decoder names only the unknown key: its first
		// occurrence anywhere.
		return firstKey(n.Content[0], parts[0], line)
	}
	walk(n.Content[0], parts)
	return line
}

// standIn is a key standing in for one a policy reads from a Secret, in
// structural checks: a new key each time, so no two stand-ins are equal.
func standIn() (crypto.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	return pub, err
}

// firstKey is the line of the first mapping key named key under node,
// depth first; def when there is none.
func firstKey(node *yamlv3.Node, key string, def int) int {
	if node.Kind == yamlv3.MappingNode {
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				return node.Content[i].Line
			}
			if l := firstKey(node.Content[i+1], key, 0); l > 0 {
				return l
			}
		}
	}
	for _, c := range node.Content {
		if node.Kind == yamlv3.MappingNode {
			break
		}
		if l := firstKey(c, key, 0); l > 0 {
			return l
		}
	}
	if def > 0 {
		return def
	}
	return 0
}
