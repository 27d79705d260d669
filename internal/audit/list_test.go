package audit

import (
	"context"
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// pagedList serves one object per page (the fake dynamic client drops
// Limit and Continue).
type pagedList struct {
	dynamic.ResourceInterface // only List is called
	names                     []string
	limits                    []int64
}

func (p *pagedList) List(_ context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	p.limits = append(p.limits, opts.Limit)
	i := 0
	if opts.Continue != "" {
		if _, err := fmt.Sscan(opts.Continue, &i); err != nil {
			return nil, err
		}
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "PodList"}}
	item := unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod"}}
	item.SetName(p.names[i])
	list.Items = []unstructured.Unstructured{item}
	if i+1 < len(p.names) {
		list.SetContinue(fmt.Sprint(i + 1))
	}
	return list, nil
}

// Pages are followed to the end, with the chunk size as the limit.
func TestListChunkedFollowsPages(t *testing.T) {
	p := &pagedList{names: []string{"a", "b", "c"}}
	var got []string
	err := ListChunked(context.Background(), p, 1, func(u *unstructured.Unstructured) error {
		got = append(got, u.GetName())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, p.names) || !slices.Equal(p.limits, []int64{1, 1, 1}) {
		t.Errorf("listed %v with limits %v, want a, b, c in three requests of 1", got, p.limits)
	}
}
