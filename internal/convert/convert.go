// Package convert turns sigstore policy-controller ClusterImagePolicies
// (and its TrustRoots) and Kyverno ClusterPolicies and Policies with
// verifyImages rules into signgate ClusterImagePolicies, ImagePolicies
// and TrustRoots, listing per input field what cannot be converted and
// why (`signgate convert`, docs/migrating.md).
//
// A conversion is never more permissive than its source: what signgate
// cannot express is left out in the direction that denies (an authority
// dropped from a policy that any authority satisfies, a policy not
// written at all when what is left would admit more), and reported.
package convert

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Options configure a conversion.
type Options struct {
	// PublicGoodTrustRoot names the TrustRoot of Sigstore's public-good
	// instance, which keyless authorities of the sources trust unless
	// they name another (the chart's sigstore.publicGoodTrustRoot.name).
	// Default DefaultPublicGoodTrustRoot.
	PublicGoodTrustRoot string
}

// DefaultPublicGoodTrustRoot is the chart's default TrustRoot name for
// Sigstore's public-good instance.
const DefaultPublicGoodTrustRoot = "public-good"

// Source is where a converted object or a problem comes from.
type Source struct {
	File       string `json:"file"`
	Line       int    `json:"line"`       // the document's first line of content
	APIVersion string `json:"apiVersion"` // of the input object
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String is "FILE:LINE: KIND NAME" (with NAMESPACE/ for namespaced ones).
func (s Source) String() string {
	name := s.Name
	if s.Namespace != "" {
		name = s.Namespace + "/" + name
	}
	return fmt.Sprintf("%s:%d: %s %s", s.File, s.Line, s.Kind, name)
}

// A Problem is one input field that was not converted.
type Problem struct {
	Source
	// Field is the input field's path, e.g. spec.authorities[0].ctlog;
	// "" for the whole object.
	Field string `json:"field"`
	// Reason says why it was not converted and what the output does
	// instead (left out, the policy not written, …).
	Reason string `json:"reason"`
}

// String is "FILE:LINE: KIND NAME: FIELD: REASON".
func (p Problem) String() string {
	if p.Field == "" {
		return p.Source.String() + ": " + p.Reason
	}
	return p.Source.String() + ": " + p.Field + ": " + p.Reason
}

// An Object is one converted signgate object: a
// *v1alpha1.ClusterImagePolicy, *v1alpha1.ImagePolicy or
// *v1alpha1.TrustRoot with its TypeMeta set.
type Object struct {
	From Source
	Obj  any
}

// Result is a conversion's output.
type Result struct {
	Objects  []Object
	Problems []Problem
	// Skipped are documents of other kinds, which are not policies of
	// either tool (a Deployment next to the policies); not problems.
	Skipped []Source
}

// document is one input object.
type document struct {
	Source
	obj map[string]any
}

// converters by the input's API group and kind.
type converter func(d document, o Options) ([]Object, []Problem)

var converters = map[string]converter{}

// register adds the converter of group/Kind.
func register(groupKind string, c converter) { converters[groupKind] = c }

// maxDocumentBytes bounds one YAML document of the input.
const maxDocumentBytes = 4 << 20

// Convert converts every policy of one file (YAML or JSON, several
// documents, Lists expanded). An error is input that cannot be read as
// objects at all; everything else is a Problem.
func Convert(file string, data []byte, o Options) (Result, error) {
	if o.PublicGoodTrustRoot == "" {
		o.PublicGoodTrustRoot = DefaultPublicGoodTrustRoot
	}
	docs, err := documents(file, data)
	if err != nil {
		return Result{}, err
	}
	var r Result
	for _, d := range docs {
		c := converters[groupOf(d.APIVersion)+"/"+d.Kind]
		if c == nil {
			r.Skipped = append(r.Skipped, d.Source)
			continue
		}
		objs, problems := c(d, o)
		r.Objects = append(r.Objects, objs...)
		r.Problems = append(r.Problems, problems...)
	}
	return r, nil
}

func groupOf(apiVersion string) string {
	g, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return "" // core
	}
	return g
}

// documents splits data into objects, expanding Lists.
func documents(file string, data []byte) ([]document, error) {
	var out []document
	r := utilyaml.NewYAMLReader(bufio.NewReaderSize(bytes.NewReader(data), 4096))
	line := 1
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, n, err)
		}
		start := line + leadingLines(doc)
		line += bytes.Count(doc, []byte("\n")) + 1
		if len(doc) > maxDocumentBytes {
			return nil, fmt.Errorf("%s:%d: document %d is larger than %d bytes", file, start, n, maxDocumentBytes)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("%s:%d: document %d: %w", file, start, n, err)
		}
		if obj == nil {
			continue // empty or comments only
		}
		d := newDocument(file, start, obj)
		if strings.HasSuffix(d.Kind, "List") {
			items, _ := obj["items"].([]any)
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					out = append(out, newDocument(file, start, m))
				}
			}
			continue
		}
		out = append(out, d)
	}
}

func newDocument(file string, line int, obj map[string]any) document {
	meta, _ := obj["metadata"].(map[string]any)
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	return document{
		Source: Source{
			File: file, Line: line,
			APIVersion: str(obj, "apiVersion"), Kind: str(obj, "kind"),
			Namespace: str(meta, "namespace"), Name: str(meta, "name"),
		},
		obj: obj,
	}
}

// leadingLines counts the blank and comment lines before a document's
// content.
func leadingLines(doc []byte) int {
	n := 0
	for _, l := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return n
		}
		n++
	}
	return n
}

// WriteYAML writes the objects as a multi-document YAML stream, each
// after a comment naming its source.
func WriteYAML(w io.Writer, objs []Object) error {
	for i, o := range objs {
		b, err := manifest(o.Obj)
		if err != nil {
			return fmt.Errorf("%s: %w", o.From, err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "# converted from %s %s (%s:%d)\n", o.From.Kind, qualified(o.From), o.From.File, o.From.Line); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// manifest is obj as YAML to apply: without the empty status and
// creation timestamp the typed objects carry.
func manifest(obj any) ([]byte, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

func qualified(s Source) string {
	if s.Namespace != "" {
		return s.Namespace + "/" + s.Name
	}
	return s.Name
}

// SortProblems orders problems by file, line and field.
func SortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Field < b.Field
	})
}

// problem is a Problem of d at field.
func (d document) problem(field, format string, args ...any) Problem {
	return Problem{Source: d.Source, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// unknown reports each key of m (the object at path) that is not in
// known: a field this converter does not understand is never silently
// dropped.
func (d document) unknown(path string, m map[string]any, known ...string) []Problem {
	var keys []string
	for k := range m {
		if !slices.Contains(known, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []Problem
	for _, k := range keys {
		f := k
		if path != "" {
			f = path + "." + k
		}
		out = append(out, d.problem(f, "not a field signgate knows how to convert; left out"))
	}
	return out
}
