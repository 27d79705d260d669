package cloudauth

import (
	"net/http"
	"sync/atomic"
)

// countingTransport counts the requests carried by Settings.Transport.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}
