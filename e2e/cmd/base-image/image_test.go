package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func TestBuildRunsAsNonrootWithCAs(t *testing.T) {
	t.Parallel()
	img, err := Build([]byte(testCA), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config user=%q platform=%s/%s, want 65532:65532 linux/amd64", cf.Config.User, cf.OS, cf.Architecture)
	}
	got := tarFiles(t, img)
	if got["etc/ssl/certs/ca-certificates.crt"] != testCA {
		t.Errorf("CA bundle = %q, want the input", got["etc/ssl/certs/ca-certificates.crt"])
	}
	if !strings.Contains(got["etc/passwd"], "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532:\n%s", got["etc/passwd"])
	}
}

func TestBuildIsReproducible(t *testing.T) {
	t.Parallel()
	a, errA := Build([]byte(testCA), "amd64")
	b, errB := Build([]byte(testCA), "amd64")
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("digests differ: %s vs %s", da, db)
	}
}

func TestBuildRejectsEmptyCABundle(t *testing.T) {
	t.Parallel()
	if _, err := Build([]byte("\n"), "amd64"); err == nil {
		t.Fatal("Build with an empty CA bundle succeeded")
	}
}

func TestRunPushesAndPrintsDigest(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	caFile := t.TempDir() + "/ca.crt"
	writeFile(t, caFile, testCA)

	var out strings.Builder
	err := run(context.Background(), []string{"-ref", host + "/signgate-base:nonroot", "-ca-file", caFile, "-insecure"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(strings.TrimSpace(out.String()), name.Insecure)
	if err != nil {
		t.Fatalf("output %q is not a digest reference: %v", out.String(), err)
	}
	pulled, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("65532:65532", cf.Config.User); diff != "" {
		t.Errorf("pushed image user (-want +got):\n%s", diff)
	}
}

// tarFiles returns the regular files of img's flattened filesystem.
func tarFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = string(b)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
