//go:build e2e

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

const modulePath = "github.com/signgate/signgate"

// RepoRoot finds the signgate checkout by walking up from the working
// directory to the go.mod of module github.com/signgate/signgate. Both
// `go test ./e2e/...` (run in e2e/) and `go run ./e2e/cmd/demo` (run in the
// root) start inside it.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		// e2e/tools' go.mod names a sub-path ("…/e2e/tools\n"), so the
		// newline keeps it from matching.
		if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

// Binaries are the programs the harness starts.
type Binaries struct {
	Etcd          string // bin/etcd
	KubeAPIServer string // bin/kube-apiserver
	Cosign        string // bin/cosign
	Signgate      string // bin/signgate
	Registry      string // docker-registry from PATH (Debian package)

	// What the keyless tests sign against (StartSigstore).
	Cosign3 string // bin/cosign3: cosign v3
	Fulcio  string // bin/fulcio
	TSA     string // bin/timestamp-server
	Rekor   string // bin/rekor-server: rekor-tiles (Rekor v2) on local storage
}

// FindBinaries locates the programs under root/bin (built by `make build
// e2e-tools`) and docker-registry on PATH. It reports every missing one and
// how to get it.
func FindBinaries(root string) (Binaries, error) {
	bin := filepath.Join(root, "bin")
	b := Binaries{
		Etcd:          filepath.Join(bin, "etcd"),
		KubeAPIServer: filepath.Join(bin, "kube-apiserver"),
		Cosign:        filepath.Join(bin, "cosign"),
		Signgate:      filepath.Join(bin, "signgate"),
		Cosign3:       filepath.Join(bin, "cosign3"),
		Fulcio:        filepath.Join(bin, "fulcio"),
		TSA:           filepath.Join(bin, "timestamp-server"),
		Rekor:         filepath.Join(bin, "rekor-server"),
	}
	var missing []error
	for _, p := range []string{b.Etcd, b.KubeAPIServer, b.Cosign, b.Signgate, b.Cosign3, b.Fulcio, b.TSA, b.Rekor} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, fmt.Errorf("%s missing (run `make build e2e-tools`)", p))
		}
	}
	reg, err := exec.LookPath("docker-registry")
	if err != nil {
		missing = append(missing, errors.New("docker-registry not on PATH (run `make registry`: apt-get install docker-registry)"))
	}
	b.Registry = reg
	if len(missing) > 0 {
		return b, fmt.Errorf("find binaries: %w", errors.Join(missing...))
	}
	return b, nil
}
