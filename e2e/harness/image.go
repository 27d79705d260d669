//go:build e2e

package harness

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BuildGateImage builds and pushes the gate's own image to repo (HOST/name)
// the documented way, `make image KO_DOCKER_REPO=repo` run in the
// repository root, with the digest reference written into dir instead of
// bin/image.ref. make's output goes to dir/make-image.log; on failure its
// tail is in the error. It returns the pushed digest.
func BuildGateImage(ctx context.Context, root, repo, dir string) (name.Digest, error) {
	refFile := filepath.Join(dir, "image.ref")
	logPath := filepath.Join(dir, "make-image.log")
	log, err := os.Create(logPath)
	if err != nil {
		return name.Digest{}, fmt.Errorf("build gate image: %w", err)
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, "make", "image", "KO_DOCKER_REPO="+repo, "IMAGE_REF_FILE="+refFile)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = log, log
	// make starts go run and ko: on cancellation kill the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		return name.Digest{}, fmt.Errorf("make image KO_DOCKER_REPO=%s: %w\n%s", repo, err, tailFile(logPath, 30))
	}
	b, err := os.ReadFile(refFile)
	if err != nil {
		return name.Digest{}, fmt.Errorf("make image KO_DOCKER_REPO=%s: %w", repo, err)
	}
	ref := strings.TrimSpace(string(b))
	d, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		return name.Digest{}, fmt.Errorf("make image wrote %q to %s: %w", ref, refFile, err)
	}
	if d.Context().Name() != repo {
		return name.Digest{}, fmt.Errorf("make image KO_DOCKER_REPO=%s pushed %s", repo, d)
	}
	return d, nil
}

// ExtractEntrypoint pulls the image d and writes the file its entrypoint
// names (the first Entrypoint element, e.g. /ko-app/signgate) to
// dir/<base name>, executable. It returns that path.
func ExtractEntrypoint(ctx context.Context, d name.Digest, dir string) (string, error) {
	img, err := remote.Image(d, remote.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", d, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("read config of %s: %w", d, err)
	}
	if len(cf.Config.Entrypoint) == 0 {
		return "", fmt.Errorf("extract entrypoint of %s: the image has none", d)
	}
	entry := strings.TrimPrefix(path.Clean(cf.Config.Entrypoint[0]), "/")
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("extract %s from %s: not in the image", entry, d)
		}
		if err != nil {
			return "", fmt.Errorf("extract %s from %s: %w", entry, d, err)
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") != entry || h.Typeflag != tar.TypeReg {
			continue
		}
		dst := filepath.Join(dir, path.Base(entry))
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return "", fmt.Errorf("extract %s from %s: %w", entry, d, err)
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("extract %s from %s: %w", entry, d, err)
		}
		return dst, nil
	}
}

// tailFile is the last n lines of the file at p ("" if unreadable).
func tailFile(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
