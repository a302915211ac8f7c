package sqlite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// TestConcurrentWriters runs reports, plans, results and snapshots from
// many goroutines at once, as the API and the controller do: no write may
// fail for lock reasons and nothing may be lost.
func TestConcurrentWriters(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	const clients, endpoints, rounds = 4, 5, 5
	for c := range clients {
		for e := range endpoints {
			enroll(t, db, fmt.Sprintf("c%d-ep%d", c, e), fmt.Sprintf("c%d", c))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for c := range clients {
		client := fmt.Sprintf("c%d", c)
		// The agents of the client report and answer their jobs...
		for e := range endpoints {
			ep := fmt.Sprintf("%s-ep%d", client, e)
			wg.Go(func() {
				for r := range rounds {
					at := t0.Add(time.Duration(r) * time.Minute)
					if err := db.ReplaceInventory(ctx, report(ep, at, kb("KB1", false), kb("KB2", false))); err != nil {
						errs <- err
						return
					}
					due, err := db.DueJobs(ctx, ep, at)
					if err != nil {
						errs <- err
						return
					}
					for _, j := range due {
						if _, err := db.RecordResult(ctx, j.ID, ep, []store.UpdateResult{{Update: j.Updates[0], Result: protocol.ResultFailed}}, at); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		// ...while the controller re-plans the client...
		wg.Go(func() {
			for r := range rounds {
				var jobs []store.Job
				for e := range endpoints {
					jobs = append(jobs, store.Job{Job: plan.Job{
						Endpoint: fmt.Sprintf("%s-ep%d", client, e), Ring: "broad", Updates: []string{"KB1"},
						NotAfter: t0.Add(time.Hour), Reboot: schema.RebootNever, Revision: "r",
						IdempotencyKey: fmt.Sprintf("%s-ep%d/%d", client, e, r),
					}})
				}
				jobs, err := numberedJobs(db, client, jobs)
				if err != nil {
					errs <- err
					return
				}
				if _, err := db.CreateJobs(ctx, client, jobs, t0); err != nil {
					errs <- err
					return
				}
				if _, err := db.ClientSnapshot(ctx, client, t0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// ...and /v1/state is read.
	wg.Go(func() {
		for range rounds {
			if _, err := db.Snapshot(ctx, t0); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	var jobs, seqMax int
	if err := db.read.QueryRow(`SELECT count(*), max(seq) FROM jobs`).Scan(&jobs, &seqMax); err != nil {
		t.Fatal(err)
	}
	if jobs != clients*endpoints*rounds || seqMax != rounds {
		t.Errorf("%d jobs with highest sequence %d, want %d jobs up to %d", jobs, seqMax, clients*endpoints*rounds, rounds)
	}
}
