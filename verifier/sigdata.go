package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxClassicLayers is cosign's own limit on the layers of a .sig manifest
// (pkg/oci/remote maxLayers): a manifest with more is refused as a whole,
// as cosign's client does.
const maxClassicLayers = 1000

// decodeDescriptors reads the descriptor array field ("layers" of a
// manifest, "manifests" of an index) of the JSON object raw, one element at
// a time, and keeps at most limit of the descriptors keep accepts (by
// artifact type; nil keeps all). total counts every accepted descriptor,
// kept or not. Only the kept descriptors are decoded in full: the others
// are scanned and dropped, so that a hostile manifest with thousands of
// entries costs its (capped) bytes, not thousands of descriptors.
//
// Like encoding/json, the field name matches case-insensitively, a later
// occurrence replaces an earlier one, and anything but one JSON object is
// an error; the other fields are not interpreted.
func decodeDescriptors(raw []byte, field string, limit int, keep func(artifactType string) bool) (descs []v1.Descriptor, total int, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, 0, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, 0, err
		}
		key, _ := tok.(string)
		if !strings.EqualFold(key, field) {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, 0, err
			}
			continue
		}
		descs, total = nil, 0
		tok, err = dec.Token()
		if err != nil {
			return nil, 0, err
		}
		if tok == nil { // null
			continue
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, 0, fmt.Errorf("%s is not an array", field)
		}
		for dec.More() {
			var elem json.RawMessage
			if err := dec.Decode(&elem); err != nil {
				return nil, 0, err
			}
			if keep != nil {
				var at struct {
					ArtifactType string `json:"artifactType"`
				}
				if err := json.Unmarshal(elem, &at); err != nil {
					return nil, 0, fmt.Errorf("%s[%d]: %w", field, total, err)
				}
				if !keep(at.ArtifactType) {
					continue
				}
			}
			total++
			if len(descs) >= limit {
				continue
			}
			var d v1.Descriptor
			if err := json.Unmarshal(elem, &d); err != nil {
				return nil, 0, fmt.Errorf("%s[%d]: %w", field, total-1, err)
			}
			descs = append(descs, d)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, 0, err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, 0, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, 0, errors.New("data after the JSON object")
	}
	return descs, total, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("not a JSON object")
	}
	return nil
}

// sizeText is n bytes as a limit is written in a reason: "512 KiB",
// "4 MiB", or "1000 bytes".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
