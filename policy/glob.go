package policy

import (
	"fmt"
	"strings"

	"github.com/signgate/signgate/internal/imageref"
)

// Glob matches canonical repositories (docs/policies.md, "Globs"): "registry/path/name"
// with no tag or digest, host lower-case, Docker Hub as
// "index.docker.io/library/x".
//
// Syntax: the pattern is split on "/" into segments.
//   - "*" matches any run of characters within one segment. In the first
//     (host) segment it also stops at "." and ":", so hosts match on whole
//     labels and ports: "*.example.com" matches "a.example.com" but neither
//     "a.b.example.com" nor "example.com"; "localhost:*" matches any port.
//   - "**" as a whole segment matches zero or more segments; at the end of a
//     pattern it matches one or more ("team-a/**" covers what is inside
//     team-a, not the repository "team-a" itself). A pattern that is just
//     "**" matches every repository.
//   - Everything else matches itself. Hosts compare case-insensitively;
//     paths must be lower-case, as repositories are.
//
// The pattern is canonicalized like a reference, by the same code
// (internal/imageref): a first segment without "." or ":" that is not
// "localhost" means Docker Hub ("nginx" is "index.docker.io/library/nginx",
// "acme/*" is "index.docker.io/acme/*"), the host loses a ":443" port,
// "docker.io" and "registry-1.docker.io" are "index.docker.io", and a single
// Docker Hub path segment other than "**" gets "library/" ("docker.io/*"
// means every official image). Segments without wildcards must follow the
// reference grammar ("a..b" or "-a" can never match, so they are errors).
//
// A Glob is immutable and safe for concurrent use.
type Glob struct {
	pattern string    // as written
	segs    []segment // compiled, canonical
}

type segmentKind uint8

const (
	literal segmentKind = iota // exact text
	wild                       // text with '*' within one segment
	anyOne                     // exactly one non-empty segment (from a trailing "**")
	anyMany                    // zero or more segments ("**")
)

type segment struct {
	kind  segmentKind
	text  string // literal text, or the pattern for wild
	stops string // characters '*' does not cross (host segment only)
}

// CompileGlob parses pattern. Invalid patterns (empty, empty segments, "**"
// mixed with other text, characters that cannot occur in a repository,
// upper-case paths, segments without "*" that the reference grammar
// rejects such as "a..b" or "-a") are errors.
func CompileGlob(pattern string) (Glob, error) {
	segs, err := compileSegments(canonicalGlob(pattern))
	if err != nil {
		return Glob{}, fmt.Errorf("compile glob %q: %w", pattern, err)
	}
	return Glob{pattern: pattern, segs: segs}, nil
}

// String returns the pattern as written.
func (g Glob) String() string { return g.pattern }

// Match reports whether the canonical repository repo matches. A host
// written in upper case and the Docker Hub short forms are canonicalized
// first, so Match("Docker.io/nginx") works too; tags and digests are not
// stripped (pass a repository, not a reference).
func (g Glob) Match(repo string) bool {
	if len(g.segs) == 0 {
		return false
	}
	return matchSegments(g.segs, strings.Split(imageref.ParseRepo(repo).String(), "/"))
}

// canonicalGlob applies the reference canonicalization of docs/policies.md
// to a pattern: imageref's, which the verifier applies to references.
func canonicalGlob(pattern string) string {
	if host, _, _ := strings.Cut(pattern, "/"); host == "**" {
		return pattern
	}
	host, path := imageref.Split(pattern)
	if path == "" || path == "**" {
		return imageref.Host(host) + "/" + path
	}
	return imageref.Repository(host, path)
}

func compileSegments(pattern string) ([]segment, error) {
	parts := strings.Split(pattern, "/")
	segs := make([]segment, 0, len(parts)+1)
	for i, p := range parts {
		s, err := compileSegment(p, i == 0 && p != "**")
		if err != nil {
			return nil, err
		}
		segs = append(segs, s)
	}
	if last := len(segs) - 1; segs[last].kind == anyMany {
		// A trailing "**" covers what is inside, so it needs at least one
		// segment: compile it as anyOne followed by anyMany.
		segs[last] = segment{kind: anyOne}
		segs = append(segs, segment{kind: anyMany})
	}
	return segs, nil
}

func compileSegment(p string, host bool) (segment, error) {
	switch {
	case p == "":
		return segment{}, fmt.Errorf("empty path segment")
	case p == "**":
		return segment{kind: anyMany}, nil
	case strings.Contains(p, "**"):
		return segment{}, fmt.Errorf("%q: ** must be a whole segment", p)
	}
	valid := validPathChar
	if host {
		valid = validHostChar
	}
	for i := 0; i < len(p); i++ {
		if !valid(p[i]) {
			return segment{}, fmt.Errorf("%q: invalid character %q", p, p[i])
		}
	}
	s := segment{kind: literal, text: p}
	if strings.Contains(p, "*") {
		s.kind = wild
	} else if err := checkLiteral(p, host); err != nil {
		return segment{}, err
	}
	if host {
		s.stops = ".:"
	}
	return s, nil
}

// checkLiteral applies the reference grammar to a segment without
// wildcards: one that breaks it could never match an image.
func checkLiteral(p string, host bool) error {
	if host {
		return imageref.CheckHost(p)
	}
	return imageref.CheckPathComponent(p)
}

func validPathChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("._-*", c) >= 0
}

func validHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte(".-:[]*", c) >= 0
}

// matchSegments is the classic single-backtrack wildcard algorithm, lifted
// from characters to segments: anyMany is the star, every other segment
// matches exactly one name segment. It runs in O(len(segs)*len(names)).
func matchSegments(segs []segment, names []string) bool {
	si, ni := 0, 0
	starS, starN := -1, 0
	for ni < len(names) {
		switch {
		case si < len(segs) && segs[si].kind == anyMany:
			starS, starN = si, ni
			si++
		case si < len(segs) && segs[si].match(names[ni]):
			si++
			ni++
		case starS >= 0:
			starN++
			si, ni = starS+1, starN
		default:
			return false
		}
	}
	for si < len(segs) && segs[si].kind == anyMany {
		si++
	}
	return si == len(segs)
}

func (s segment) match(name string) bool {
	switch s.kind {
	case literal:
		return s.text == name
	case anyOne:
		return name != ""
	case wild:
		return matchWild(s.text, name, s.stops)
	}
	return false
}

// matchWild matches a pattern with '*' against one segment; '*' does not
// cross any byte in stops.
func matchWild(pattern, name, stops string) bool {
	if stops == "" {
		return matchStar(pattern, name)
	}
	// Split both on the stop characters: they must line up exactly, and
	// each piece matches on its own.
	for {
		pi := strings.IndexAny(pattern, stops)
		ni := strings.IndexAny(name, stops)
		if pi < 0 || ni < 0 {
			return pi < 0 && ni < 0 && matchStar(pattern, name)
		}
		if pattern[pi] != name[ni] || !matchStar(pattern[:pi], name[:ni]) {
			return false
		}
		pattern, name = pattern[pi+1:], name[ni+1:]
	}
}

// matchStar matches '*' (any run of bytes) with one backtrack point.
func matchStar(pattern, name string) bool {
	pi, ni := 0, 0
	starP, starN := -1, 0
	for ni < len(name) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			starP, starN = pi, ni
			pi++
		case pi < len(pattern) && pattern[pi] == name[ni]:
			pi++
			ni++
		case starP >= 0:
			starN++
			pi, ni = starP+1, starN
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// matchNames is Match on a repository already canonicalized and split on
// "/", so one image can be tried against many globs cheaply.
func (g Glob) matchNames(names []string) bool {
	return len(g.segs) > 0 && matchSegments(g.segs, names)
}
