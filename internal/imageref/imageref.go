// Package imageref is the one canonicalization of image repositories that
// both policy matching (package policy) and registry access (package
// verifier) use, so that a policy glob and the verifier always agree on
// which repository an image string names. It does no I/O and imports only
// the standard library.
//
// A canonical repository is "host/path": the host lower-case, without the
// default HTTPS port ":443", every Docker Hub alias written
// "index.docker.io", and a one-component Docker Hub path under "library/".
package imageref

import (
	"fmt"
	"strings"
)

// DockerHub is the canonical Docker Hub host; it equals
// go-containerregistry's name.DefaultRegistry.
const DockerHub = "index.docker.io"

// dockerHubAliases are the hosts that serve Docker Hub under other names.
var dockerHubAliases = [...]string{"docker.io", "registry-1.docker.io", DockerHub}

// maxNameLen is the reference grammar's limit on "host/path".
const maxNameLen = 255

// Host returns the canonical form of a registry host: lower-case, without
// ":443" (kept when the host without it would not read as a host, see
// IsHost), and DockerHub for any Docker Hub alias. It does not allocate when
// host is canonical already.
func Host(host string) string {
	host = strings.ToLower(host) // returns host itself when nothing changes
	if h, ok := strings.CutSuffix(host, ":443"); ok && IsHost(h) {
		// Only when what remains still reads as a host: "myregistry:443/app"
		// must not become "myregistry/app", which is a Docker Hub name.
		host = h
	}
	for _, alias := range dockerHubAliases {
		if host == alias {
			return DockerHub
		}
	}
	return host
}

// Repo is a canonical repository, "host/path". Only this package makes
// one (RepoOf, ParseRepo), so holding a Repo means the name needs no
// second canonicalization: policy matching takes it as it is. The zero
// Repo is "" and matches no glob.
type Repo struct{ name string }

// RepoOf returns the canonical repository of a registry host and a
// repository path; it does not allocate beyond the result when both are
// canonical already.
func RepoOf(host, path string) Repo {
	return Repo{Repository(host, path)}
}

// ParseRepo is RepoOf for a repository name ("host/path", or a Docker Hub
// short form such as "nginx"), split by Split. It does not validate; see
// Check.
func ParseRepo(name string) Repo {
	host, path, ok := strings.Cut(name, "/")
	if ok && IsHost(host) && IsCanonical(host, path) {
		return Repo{name}
	}
	return RepoOf(Split(name))
}

// String returns the name, e.g. "index.docker.io/library/nginx".
func (r Repo) String() string { return r.name }

// Repository returns the canonical repository for a registry host and a
// repository path, e.g. ("Registry-1.Docker.io", "nginx") →
// "index.docker.io/library/nginx". It does not validate; see Check.
func Repository(host, path string) string {
	host, path = Canonical(host, path)
	return host + "/" + path
}

// Canonical is Repository returning the host and path separately.
func Canonical(host, path string) (string, string) {
	host = Host(host)
	if host == DockerHub && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	return host, path
}

// IsCanonical reports whether Canonical(host, path) would return host and
// path unchanged. It does not allocate.
func IsCanonical(host, path string) bool {
	return Host(host) == host && (host != DockerHub || strings.Contains(path, "/"))
}

// IsHost reports whether the first "/"-separated component of a name is a
// registry host rather than the start of a Docker Hub path, by the rule of
// the reference grammar: it contains "." or ":" or is "localhost".
func IsHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// Split splits a repository name ("host/path" or a Docker Hub short form
// such as "nginx" or "acme/app") into its host and path. A name without a
// host gets DockerHub. Neither part is canonicalized or validated.
func Split(name string) (host, path string) {
	host, path, ok := strings.Cut(name, "/")
	if !ok || !IsHost(host) {
		return DockerHub, name
	}
	return host, path
}

// Check reports whether host and path form a repository name that the
// distribution reference grammar accepts. The error says what is wrong and
// what a valid name looks like.
func Check(host, path string) error {
	if err := CheckHost(host); err != nil {
		return err
	}
	if err := CheckPath(path); err != nil {
		return err
	}
	if n := len(host) + 1 + len(path); n > maxNameLen {
		return fmt.Errorf("check repository name: %d characters; want at most %d, so use a shorter host or path", n, maxNameLen)
	}
	return nil
}

// CheckPath checks a repository path: one or more "/"-separated components,
// each lower-case letters and digits, separated inside a component by one
// ".", one or two "_", or any number of "-".
func CheckPath(path string) error {
	if path == "" {
		return fmt.Errorf("check repository path: empty; want host/name, e.g. registry.example.com/team/app")
	}
	for c := range strings.SplitSeq(path, "/") {
		if err := CheckPathComponent(c); err != nil {
			return fmt.Errorf("check repository path %q: %w", path, err)
		}
	}
	return nil
}

// CheckPathComponent checks one component of a repository path (see
// CheckPath).
func CheckPathComponent(c string) error {
	const want = "want lower-case letters and digits, separated by one '.', one or two '_', or '-' (e.g. my-app, app_v2, web.frontend)"
	if c == "" {
		return fmt.Errorf("empty path component (\"//\", or a leading or trailing \"/\"); %s", want)
	}
	if !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
		return fmt.Errorf("path component %q must start and end with a lower-case letter or digit; %s", c, want)
	}
	for i := 0; i < len(c); {
		if isAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !isAlnum(c[j]) {
			j++
		}
		if sep := c[i:j]; sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return fmt.Errorf("path component %q: invalid separator %q; %s", c, sep, want)
		}
		i = j
	}
	return nil
}

// CheckHost checks a registry host: DNS labels of letters, digits and
// inner "-", separated by single "."; or a bracketed IPv6 address; either
// optionally followed by ":" and a port number.
func CheckHost(host string) error {
	const want = "want a host name or [IPv6] address with an optional :port, e.g. registry.example.com:5000"
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port = host[:i], host[i+1:]
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("check registry host %q: port %q is not a number; %s", host, port, want)
		}
	}
	if strings.HasPrefix(name, "[") {
		inner, ok := strings.CutSuffix(name[1:], "]")
		if !ok || inner == "" || strings.Trim(inner, "0123456789abcdefABCDEF:.%") != "" {
			return fmt.Errorf("check registry host %q: invalid IPv6 address; %s", host, want)
		}
		return nil
	}
	if name == "" {
		return fmt.Errorf("check registry host %q: empty host; %s", host, want)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("check registry host %q: invalid label %q (empty, \"..\", a '-' at either end, or a character other than a letter, digit or '-'); %s", host, label, want)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// ParseMirror parses a registry mirror written "host[:port][/path prefix]"
// (registry.mirrors): it returns the canonical host (see Host) and the path
// prefix ("" for none) that the mirror serves another registry's
// repositories under, e.g. "Mirror.corp.example/dockerhub" →
// ("mirror.corp.example", "dockerhub"). The error says what is wrong.
func ParseMirror(s string) (host, prefix string, err error) {
	if s == "" || strings.TrimSpace(s) != s || strings.Contains(s, "://") || strings.ContainsAny(s, "@ \t") {
		return "", "", fmt.Errorf("mirror %q: want host[:port][/path prefix] without scheme, credentials or spaces, e.g. mirror.corp.example/dockerhub", s)
	}
	host, prefix, _ = strings.Cut(s, "/")
	if err := CheckHost(host); err != nil {
		return "", "", fmt.Errorf("mirror %q: %w", s, err)
	}
	if strings.Contains(s, "/") {
		if err := CheckPath(prefix); err != nil {
			return "", "", fmt.Errorf("mirror %q: %w", s, err)
		}
	}
	return Host(host), prefix, nil
}
