package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election is one replica's candidacy for the audit Lease
// (coordination.k8s.io) in Namespace: only the holder scans, so N
// replicas cost the registries and the API server what one does.
type Election struct {
	Kube      kubernetes.Interface
	Namespace string
	Name      string // the Lease
	Identity  string // this replica (its pod name)
	// LeaseDuration is how long a Lease is honoured without renewal: a
	// holder that stops is replaced within it. The holder renews within
	// 2/3 of it and candidates retry every 1/4 of it.
	LeaseDuration time.Duration
	Log           *slog.Logger
	Metrics       *Metrics
}

// Run campaigns until ctx ends; while this replica holds the Lease, lead
// runs with a context that ends when the Lease is lost. A lost Lease is
// campaigned for again. On ctx's end a held Lease is released, so the
// next holder need not wait it out.
func (e Election) Run(ctx context.Context, lead func(context.Context)) {
	log := e.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
		Client:     e.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	for ctx.Err() == nil {
		// client-go runs OnStartedLeading in a goroutine of its own and
		// does not wait for it: wait here, so that a lead that lost the
		// Lease has returned before this replica campaigns (and may lead)
		// again, and two never run at once.
		var leading sync.WaitGroup
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   e.LeaseDuration,
			RenewDeadline:   e.LeaseDuration * 2 / 3,
			RetryPeriod:     e.LeaseDuration / 4,
			ReleaseOnCancel: true,
			Name:            e.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					leading.Add(1)
					defer leading.Done()
					log.Info("background audit: leading", "lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
					e.Metrics.leading(true)
					defer e.Metrics.leading(false)
					lead(ctx)
				},
				OnStoppedLeading: func() {
					log.Info("background audit: not leading", "lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
				},
				OnNewLeader: func(id string) {
					if id != e.Identity {
						log.Info("background audit: another replica leads", "lease", e.Namespace+"/"+e.Name, "leader", id)
					}
				},
			},
		})
		if err != nil {
			log.Error("background audit: leader election not possible; no audit runs", "err", err)
			return
		}
		le.Run(ctx)
		leading.Wait()
	}
}
