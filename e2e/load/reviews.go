//go:build load

package main

import (
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// recordings are AdmissionReviews recorded from the real kube-apiserver by
// TestRecordReview (e2e/record_test.go): the CREATE of a restricted-compliant
// pod as the ReplicaSet controller posts it, after defaulting, the admission
// plugins and signgate's mutating webhook, as a validating webhook receives
// it. testdata/README.md lists the placeholders and how to record again.
//
//go:embed testdata/review-pod-*.json
var recordings embed.FS

// recordingName is the file holding the recording of a pod with n
// containers (the names TestRecordReview writes).
func recordingName(n int) string {
	if n == 1 {
		return "review-pod-1-container.json"
	}
	return fmt.Sprintf("review-pod-%d-containers.json", n)
}

// recordedSizes are the container counts there are recordings of.
func recordedSizes() []int {
	entries, _ := recordings.ReadDir("testdata")
	var sizes []int
	for _, e := range entries {
		s := strings.TrimPrefix(e.Name(), "review-pod-")
		s, _, _ = strings.Cut(s, "-")
		if n, err := strconv.Atoi(s); err == nil && recordingName(n) == e.Name() {
			sizes = append(sizes, n)
		}
	}
	slices.Sort(sizes)
	return sizes
}

// checkRecorded fails unless there is a recording with n containers.
func checkRecorded(n int) error {
	if !slices.Contains(recordedSizes(), n) {
		return fmt.Errorf("no recorded review of a %d-container pod in e2e/load/testdata (recorded: %v; see testdata/README.md)", n, recordedSizes())
	}
	return nil
}

// podReview returns the recorded AdmissionReview of a pod with one
// container per image, the placeholders replaced by uid, namespace and the
// images: everything else is the bytes the API server sent. It panics when
// there is no recording with len(images) containers (checkRecorded).
func podReview(uid, namespace string, images []string) []byte {
	raw, err := recordings.ReadFile("testdata/" + recordingName(len(images)))
	if err != nil {
		panic(fmt.Sprintf("%v (recorded: %v)", err, recordedSizes()))
	}
	pairs := []string{quote("{{UID}}"), quote(uid), quote("{{NAMESPACE}}"), quote(namespace)}
	for i, img := range images {
		pairs = append(pairs, quote(fmt.Sprintf("{{IMAGE_%d}}", i)), quote(img))
	}
	body := strings.NewReplacer(pairs...).Replace(string(raw))
	if strings.Contains(body, `"{{`) {
		panic(fmt.Sprintf("%s: placeholder left after filling in %d images", recordingName(len(images)), len(images)))
	}
	return []byte(body)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
