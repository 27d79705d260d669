package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// source says where an object was read from: the file (or "<stdin>") and the
// 1-based line of the object's first line of content.
type source struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (s source) String() string {
	if s.Line == 0 {
		return s.File
	}
	return s.File + ":" + strconv.Itoa(s.Line)
}

// inputError is a problem with the manifests themselves (unreadable file, bad
// YAML, not a Kubernetes object). It is reported as FILE:LINE: cause and
// makes check exit 2.
type inputError struct {
	At  source
	Err error
}

func (e *inputError) Error() string { return e.At.String() + ": " + e.Err.Error() }
func (e *inputError) Unwrap() error { return e.Err }

// manifest is one Kubernetes object read from the input, as JSON, with the
// type and object metadata check needs to build an admission request.
type manifest struct {
	At         source
	Raw        []byte // the object as JSON
	APIVersion string
	Kind       string
	Name       string
	Namespace  string // as written in the manifest; "" when absent
	Labels     map[string]string
}

// stdinName is how the input read from "-" is named in messages.
const stdinName = "<stdin>"

// readManifests reads every object from the given paths: files, directories
// (walked recursively for *.yaml, *.yml and *.json, in lexical order) or "-"
// for stdin. Lists (kind List or *List with items) are expanded; their items
// keep the position of the list. No object at all is an error: a CI job
// whose path points at nothing must not pass.
func readManifests(paths []string, stdin io.Reader) ([]manifest, error) {
	var out []manifest
	for _, p := range paths {
		ms, err := readPath(p, stdin)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no objects in -f %s: nothing to check; point -f at manifests (*.yaml, *.yml, *.json files, a directory of them, or - for stdin)", strings.Join(paths, ", "))
	}
	return out, nil
}

func readPath(p string, stdin io.Reader) ([]manifest, error) {
	if p == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, &inputError{At: source{File: stdinName}, Err: fmt.Errorf("read: %w", err)}
		}
		return parseManifests(stdinName, data)
	}
	info, err := os.Stat(p)
	if err != nil {
		return nil, &inputError{At: source{File: p}, Err: pathCause(err)}
	}
	if !info.IsDir() {
		return readFile(p)
	}
	var out []manifest
	err = walkManifestFiles(p, func(path string) error {
		ms, err := readFile(path)
		out = append(out, ms...)
		return err
	})
	return out, err
}

// walkManifestFiles calls fn with each *.yaml, *.yml and *.json file under
// dir, recursively, in lexical order; the first error stops the walk.
func walkManifestFiles(dir string, fn func(path string) error) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return &inputError{At: source{File: path}, Err: pathCause(err)}
		}
		if d.IsDir() || !isManifestFile(path) {
			return nil
		}
		return fn(path)
	})
}

// pathCause drops the path from an *fs.PathError: inputError names the file.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isManifestFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func readFile(path string) ([]manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &inputError{At: source{File: path}, Err: pathCause(err)}
	}
	return parseManifests(path, data)
}

// parseManifests decodes every document of a multi-document YAML (or JSON)
// stream. The first error stops the read: a CI gate must not pass a file it
// could only half read.
func parseManifests(file string, data []byte) ([]manifest, error) {
	var out []manifest
	for _, doc := range splitDocuments(data) {
		ms, err := decodeDocument(file, doc)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// document is one YAML document: its text and the 1-based line in the file
// where that text starts. sigs.k8s.io/yaml knows nothing of streams and
// reports lines relative to the text it is given, so check splits the stream
// itself and adds the offset back.
type document struct {
	Line int
	Text []byte
}

// lastLine is the line of the document's last character.
func (d document) lastLine() int {
	return d.Line + bytes.Count(bytes.TrimSuffix(d.Text, []byte("\n")), []byte("\n"))
}

// splitDocuments splits a YAML stream on "---" (document start, optionally
// followed by content or a comment on the same line) and "..." (document
// end) markers at column 0. Documents with nothing but blanks and comments
// are dropped.
func splitDocuments(data []byte) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := bytes.SplitAfter(data, []byte("\n"))
	var docs []document
	cur := document{Line: 1}
	flush := func(next int) {
		if hasContent(cur.Text) {
			docs = append(docs, cur)
		}
		cur = document{Line: next}
	}
	for i, line := range lines {
		n := i + 1
		trimmed := bytes.TrimRight(line, "\r\n")
		switch {
		case isMarker(trimmed, "---"):
			flush(n)
			// Keep the rest of the line ("--- {kind: Pod}") in place, so
			// columns and line numbers stay right.
			cur.Text = append(cur.Text, append([]byte("   "), line[3:]...)...)
		case isMarker(trimmed, "..."):
			flush(n + 1)
		default:
			cur.Text = append(cur.Text, line...)
		}
	}
	flush(0)
	return docs
}

func isMarker(line []byte, marker string) bool {
	if !bytes.HasPrefix(line, []byte(marker)) {
		return false
	}
	rest := line[len(marker):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}

// hasContent reports whether text holds anything but blank lines and comments.
func hasContent(text []byte) bool { return firstContentLine(text) >= 0 }

// firstContentLine is the 0-based index of the first line that is neither
// blank nor a comment, or -1.
func firstContentLine(text []byte) int {
	for i, line := range bytes.Split(text, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if len(l) > 0 && l[0] != '#' {
			return i
		}
	}
	return -1
}

// yamlLine finds the line number in a YAML parser error ("yaml: line 7: …").
var yamlLine = regexp.MustCompile(`line (\d+)`)

func decodeDocument(file string, doc document) ([]manifest, error) {
	at := source{File: file, Line: doc.Line + firstContentLine(doc.Text)}
	js, err := yaml.YAMLToJSONStrict(doc.Text)
	if err != nil {
		return nil, yamlError(file, doc, err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, &inputError{At: at, Err: errors.New("not a Kubernetes object (expected a mapping with apiVersion and kind)")}
	}
	return expand(at, obj)
}

// yamlError maps a YAML error to FILE:LINE, the line being the document's
// start plus the line inside the document when the parser names one.
func yamlError(file string, doc document, err error) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	at := source{File: file, Line: doc.Line + max(firstContentLine(doc.Text), 0)}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		// The parser may name the line after the last one (unexpected end).
		at.Line = min(doc.Line+n-1, doc.lastLine())
		msg = strings.Replace(msg, m[0]+": ", "", 1)
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, ":\n  ", ": ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return &inputError{At: at, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// expand turns a decoded object into manifests: a List becomes its items.
func expand(at source, obj map[string]any) ([]manifest, error) {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	if kind == "" || apiVersion == "" {
		return nil, &inputError{At: at, Err: errors.New("not a Kubernetes object: apiVersion and kind are required")}
	}
	if items, isList := obj["items"].([]any); isList && strings.HasSuffix(kind, "List") {
		var out []manifest
		for i, item := range items {
			m, ok := item.(map[string]any)
			if !ok {
				return nil, &inputError{At: at, Err: fmt.Errorf("%s item %d is not an object", kind, i)}
			}
			ms, err := expand(at, m)
			if err != nil {
				return nil, err
			}
			out = append(out, ms...)
		}
		return out, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, &inputError{At: at, Err: err}
	}
	var meta struct {
		Metadata struct {
			Name         string            `json:"name"`
			GenerateName string            `json:"generateName"`
			Namespace    string            `json:"namespace"`
			Labels       map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, &inputError{At: at, Err: fmt.Errorf("%s metadata: %w", kind, err)}
	}
	name := meta.Metadata.Name
	if name == "" && meta.Metadata.GenerateName != "" {
		name = meta.Metadata.GenerateName + "*"
	}
	return []manifest{{
		At:         at,
		Raw:        raw,
		APIVersion: apiVersion,
		Kind:       kind,
		Name:       name,
		Namespace:  meta.Metadata.Namespace,
		Labels:     meta.Metadata.Labels,
	}}, nil
}
