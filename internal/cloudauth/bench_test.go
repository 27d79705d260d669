package cloudauth

import (
	"net/http"
	"testing"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

// BenchmarkNewProvider is what enabling a provider costs at start (its
// SDK's configuration read from the environment; no network). The
// package initialisation each SDK adds to every start is measured by
// `make cloud-size`.
func BenchmarkNewProvider(b *testing.B) {
	for _, name := range cloudhost.Names {
		b.Run(name, func(b *testing.B) {
			f := factories[name]
			if f == nil {
				b.Skipf("built without %s", name)
			}
			s := Settings{Transport: http.DefaultTransport.(*http.Transport).Clone()}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
