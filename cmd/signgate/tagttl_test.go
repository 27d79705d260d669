package main

import (
	"testing"
	"time"
)

func TestVerifierTagTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want time.Duration }{
		{0, -1},                              // configuration 0 = disabled = verifier's negative
		{15 * time.Second, 15 * time.Second}, // passed through
	} {
		if got := verifierTagTTL(tc.in); got != tc.want {
			t.Errorf("verifierTagTTL(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
