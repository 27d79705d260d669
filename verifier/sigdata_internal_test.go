package verifier

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestDecodeDescriptors: at most limit descriptors are materialized, every
// accepted one is counted, and the JSON is checked as a whole.
func TestDecodeDescriptors(t *testing.T) {
	desc := func(i int, artifactType string) v1.Descriptor {
		return v1.Descriptor{
			MediaType:    "application/vnd.oci.image.manifest.v1+json",
			ArtifactType: artifactType,
			Size:         int64(i),
			Digest:       v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)},
			Annotations:  map[string]string{"n": fmt.Sprint(i)},
		}
	}
	var layers, manifests []v1.Descriptor
	for i := range 1000 {
		layers = append(layers, desc(i, ""))
		at := "application/vnd.dev.sigstore.bundle.v0.3+json"
		if i%2 == 1 {
			at = "application/spdx+json"
		}
		manifests = append(manifests, desc(i, at))
	}
	raw, err := json.Marshal(v1.Manifest{SchemaVersion: 2, Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	got, total, err := decodeDescriptors(raw, "layers", 5, nil)
	if err != nil || total != 1000 || len(got) != 5 || got[4].Size != 4 || got[4].Annotations["n"] != "4" {
		t.Fatalf("layers: %d descriptors (last %+v), total %d, err %v; want the first 5 of 1000", len(got), got[len(got)-1], total, err)
	}
	raw, err = json.Marshal(v1.IndexManifest{SchemaVersion: 2, Manifests: manifests})
	if err != nil {
		t.Fatal(err)
	}
	got, total, err = decodeDescriptors(raw, "manifests", 3, maybeBundle)
	if err != nil || total != 500 || len(got) != 3 || got[2].Size != 4 {
		t.Fatalf("manifests: %d descriptors, total %d, err %v; want bundles 0, 2, 4 of 500", len(got), total, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"Layers":[{"digest":"sha256:` + strings.Repeat("a", 64) + `"}]}`, "1/1"},
		{`{"layers":[{}],"layers":null}`, "0/0"},
		{`{"layers":null}`, "0/0"},
		{`{}`, "0/0"},
		{`[]`, "error"},
		{`{"layers":{}}`, "error"},
		{`{"layers":[{"digest":"md5:zz"}]}`, "error"},
		{`{"layers":[{}]`, "error"},
		{`{"layers":[]} {}`, "error"},
		{``, "error"},
	} {
		got, total, err := decodeDescriptors([]byte(tc.in), "layers", 10, nil)
		s := fmt.Sprintf("%d/%d", len(got), total)
		if err != nil {
			s = "error"
		}
		if s != tc.want {
			t.Errorf("decodeDescriptors(%s) = %s (err %v), want %s", tc.in, s, err, tc.want)
		}
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{512 << 10: "512 KiB", 4 << 20: "4 MiB", 1000: "1000 bytes", 1536 << 10: "1536 KiB"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}
