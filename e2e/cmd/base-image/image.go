package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The non-root identity of the image, the same numbers distroless uses.
const (
	nonrootUID = 65532
	nonrootGID = 65532
	caPath     = "etc/ssl/certs/ca-certificates.crt"
)

// epoch is every file's modification time and the image's creation time, so
// the image is reproducible.
var epoch = time.Unix(0, 0).UTC()

// entry is one file or directory of the base layer.
type entry struct {
	path     string
	mode     int64
	uid, gid int
	data     []byte // nil for a directory
}

// files lists the layer's entries, parents before children.
func files(ca []byte) []entry {
	return []entry{
		{path: "etc/", mode: 0o755},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "etc/passwd", mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/ssl/", mode: 0o755},
		{path: "etc/ssl/certs/", mode: 0o755},
		{path: caPath, mode: 0o644, data: ca},
		{path: "home/", mode: 0o755},
		{path: "home/nonroot/", mode: 0o700, uid: nonrootUID, gid: nonrootGID},
		{path: "tmp/", mode: 0o1777},
	}
}

// Build returns the base image for arch: one layer with files(ca), running as
// 65532:65532.
func Build(ca []byte, arch string) (v1.Image, error) {
	if len(bytes.TrimSpace(ca)) == 0 {
		return nil, fmt.Errorf("build base image: empty CA bundle")
	}
	tb, err := layerTar(files(ca))
	if err != nil {
		return nil, fmt.Errorf("build base layer: %w", err)
	}
	layer, err := layerFromBytes(tb)
	if err != nil {
		return nil, fmt.Errorf("build base layer: %w", err)
	}
	img, err := mutate.AppendLayers(ociEmpty(), layer)
	if err != nil {
		return nil, fmt.Errorf("build base image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("build base image config: %w", err)
	}
	return mutate.ConfigFile(img, configFile(cf.DeepCopy(), arch))
}

func ociEmpty() v1.Image {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

// configFile sets what the base image promises on cf: linux/arch, the
// non-root user, HOME and where the CA bundle is.
func configFile(cf *v1.ConfigFile, arch string) *v1.ConfigFile {
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.User = fmt.Sprintf("%d:%d", nonrootUID, nonrootGID)
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=/home/nonroot",
		"SSL_CERT_FILE=/" + caPath,
	}
	return cf
}

func layerTar(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(header(e)); err != nil {
			return nil, fmt.Errorf("write %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func header(e entry) *tar.Header {
	h := &tar.Header{
		Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.gid,
		ModTime: epoch, Format: tar.FormatPAX,
		Typeflag: tar.TypeReg, Size: int64(len(e.data)),
	}
	if e.data == nil {
		h.Typeflag = tar.TypeDir
	}
	return h
}

func layerFromBytes(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
