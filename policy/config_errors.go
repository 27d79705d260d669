package policy

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// path is a field path in the configuration: field names (string) and list
// indices (int), printed as "hardening[0].namespaceSelector".
type path []any

// mapKey is a path segment naming a key of a map field, printed as
// ["key"] since keys such as host names hold dots.
type mapKey string

// to returns a new path with segs appended; p is never modified.
func (p path) to(segs ...any) path {
	return append(append(path(nil), p...), segs...)
}

func (p path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		case mapKey:
			b.WriteString("[" + strconv.Quote(string(s)) + "]")
		default:
			if b.Len() > 0 {
				b.WriteString(".")
			}
			fmt.Fprint(&b, s)
		}
	}
	return b.String()
}

// problem is one validation failure of one field.
type problem struct {
	path path
	msg  string
}

// problems collects every validation failure so a user fixes them in one go.
type problems []problem

func (errs *problems) add(p path, format string, args ...any) {
	*errs = append(*errs, problem{path: p, msg: fmt.Sprintf(format, args...)})
}

func (errs *problems) namespaces(p path, names []string) {
	for i, n := range names {
		if len(validation.IsDNS1123Label(n)) > 0 {
			errs.add(p.to(i), "must be a namespace name (a DNS-1123 label) (got %q)", n)
		}
	}
}

func (errs *problems) nonEmpty(p path, values []string) {
	for i, v := range values {
		if v == "" {
			errs.add(p.to(i), "must not be empty")
		}
	}
}

// withLines turns the problems into one error, a line each, located in the
// document: "line 7: podSecurity.defaults.enforce: must be one of …".
// Without a document (DefaultConfig) the line is left out.
// Problems are sorted by line, stably.
func (errs problems) withLines(root *yaml.Node) error {
	type located struct {
		line int
		err  error
	}
	list := make([]located, 0, len(errs))
	for _, e := range errs {
		if line := lineOf(root, e.path); line > 0 {
			list = append(list, located{line, fmt.Errorf("line %d: %s: %s", line, e.path, e.msg)})
		} else {
			list = append(list, located{0, fmt.Errorf("%s: %s", e.path, e.msg)})
		}
	}
	slices.SortStableFunc(list, func(a, b located) int { return a.line - b.line })
	out := make(lineErrors, len(list))
	for i, l := range list {
		out[i] = l.err
	}
	return out
}

// lineErrors is several configuration problems: one alone reads as itself,
// more start on a new line each, indented under the caller's prefix.
type lineErrors []error

func (e lineErrors) Error() string {
	if len(e) == 1 {
		return e[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(e))
	for _, err := range e {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e lineErrors) Unwrap() []error { return e }

func (errs problems) Error() string { return errs.withLines(nil).Error() }

// lineOf returns the line of the field at p in the document, or of its
// deepest ancestor present (a missing field is reported where its parent
// is). It returns 0 without a document.
func lineOf(root *yaml.Node, p path) int {
	if root == nil {
		return 0
	}
	n, line := root, root.Line
	for _, seg := range p {
		key, val := child(n, seg)
		if val == nil {
			break
		}
		line, n = key.Line, val
	}
	return line
}

// child returns the key (or item) and value nodes of seg in n, nil when
// absent. For a list item, key and value are the item.
func child(n *yaml.Node, seg any) (key, val *yaml.Node) {
	switch seg := seg.(type) {
	case int:
		if n.Kind == yaml.SequenceNode && seg < len(n.Content) {
			return n.Content[seg], n.Content[seg]
		}
	case string:
		return mappingEntry(n, seg)
	case mapKey:
		return mappingEntry(n, string(seg))
	}
	return nil, nil
}

// mappingEntry returns the key and value nodes of key in the mapping n,
// nil when absent.
func mappingEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i], n.Content[i+1]
			}
		}
	}
	return nil, nil
}

// walk calls fn for every mapping entry and list item under n, depth first,
// until fn returns true; it returns the path fn stopped at.
func walk(n *yaml.Node, p path, fn func(p path, key, val *yaml.Node) bool) (path, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			q := p.to(k.Value)
			if fn(q, k, v) {
				return q, true
			}
			if r, ok := walk(v, q, fn); ok {
				return r, true
			}
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			q := p.to(i)
			if fn(q, v, v) {
				return q, true
			}
			if r, ok := walk(v, q, fn); ok {
				return r, true
			}
		}
	}
	return nil, false
}

var (
	unknownFieldRE = regexp.MustCompile("^line ([0-9]+): field (.*) not found in type .*$")
	typeErrorRE    = regexp.MustCompile("^line ([0-9]+): cannot unmarshal !!([a-z]+) `(.*)` into (.*)$")
)

// decodeError rewrites the YAML decoder's errors to name the field path and,
// for unknown fields, the fields that are allowed there.
func decodeError(root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	list := make(lineErrors, 0, len(te.Errors))
	for _, msg := range te.Errors {
		list = append(list, errors.New(rewriteDecodeError(root, msg)))
	}
	return list
}

func rewriteDecodeError(root *yaml.Node, msg string) string {
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p, ok := walk(root, nil, func(_ path, k, _ *yaml.Node) bool {
			return k.Line == line && k.Value == m[2]
		})
		if !ok {
			return msg
		}
		return fmt.Sprintf("line %d: %s: unknown field (allowed: %s)", line, p, strings.Join(knownFields(p[:len(p)-1]), ", "))
	}
	if m := typeErrorRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		value := strings.TrimSuffix(m[3], "...") // the decoder shortens long values
		var got *yaml.Node
		p, ok := walk(root, nil, func(_ path, _, v *yaml.Node) bool {
			got = v
			return v.Line == line && v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Value, value)
		})
		if !ok {
			return msg
		}
		want := m[4]
		if t := typeAt(p); t != nil {
			want = describe(t)
		}
		return fmt.Sprintf("line %d: %s: must be %s (got %s)", line, p, want, scalar(got))
	}
	return msg
}

// scalar renders a YAML value as the user wrote it: strings quoted.
func scalar(n *yaml.Node) string {
	if n.ShortTag() == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// describe names what a field of type t takes, in configuration terms.
func describe(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 30s or 10m"
	}
	switch t.Kind() {
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// typeAt follows the Config type along p; nil when p leaves it.
func typeAt(p path) reflect.Type {
	t := reflect.TypeFor[Config]()
	for _, seg := range p {
		t = deref(t)
		switch seg := seg.(type) {
		case int:
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		case string:
			f, ok := fieldByYAMLName(t, seg)
			if !ok {
				return nil
			}
			t = f.Type
		}
	}
	return deref(t)
}

// knownFields lists the YAML field names allowed in the mapping at p.
func knownFields(p path) []string {
	t := typeAt(p)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		if f := t.Field(i); yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlName is the name a field has in the file, "" for fields not in it.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}
