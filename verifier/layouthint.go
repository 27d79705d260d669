package verifier

import "github.com/hashicorp/golang-lru/v2/expirable"

// layoutHints remembers, per repository, whether signatures were last
// found as bundles, so that the next cold verification reads that layout
// first. A wrong hint costs one request, never a wrong answer.
type layoutHints struct {
	lru *expirable.LRU[string, bool]
}

func newLayoutHints() *layoutHints {
	return &layoutHints{lru: expirable.NewLRU[string, bool](4096, nil, 0)}
}

func (h *layoutHints) bundlesFirst(repo string) bool {
	b, _ := h.lru.Peek(repo)
	return b
}

func (h *layoutHints) record(repo string, bundles bool) {
	if bundles || h.lru.Contains(repo) {
		h.lru.Add(repo, bundles)
	}
}
