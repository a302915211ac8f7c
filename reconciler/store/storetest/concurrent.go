package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// replicas is how many handles the concurrency tests share one store
// through (with Reopen; without it, one handle).
const replicas = 3

// testConcurrentWriters runs reports, plans, results and snapshots from
// many goroutines at once, through several handles, as the API and the
// controller (and its replicas) do: no write may fail for lock reasons
// and nothing may be lost.
func testConcurrentWriters(t *testing.T, s *suite) {
	hs := s.handles(t, replicas)
	ctx := context.Background()
	const clients, endpoints, rounds = 4, 5, 5
	for c := range clients {
		for e := range endpoints {
			enroll(t, hs[0], fmt.Sprintf("c%d-ep%d", c, e), fmt.Sprintf("c%d", c))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	n := 0
	next := func() Store { n++; return hs[n%len(hs)] }
	for c := range clients {
		client := fmt.Sprintf("c%d", c)
		// The agents of the client report and answer their jobs...
		for e := range endpoints {
			ep := fmt.Sprintf("%s-ep%d", client, e)
			db := next()
			wg.Go(func() {
				for r := range rounds {
					at := t0.Add(time.Duration(r) * time.Minute)
					if err := db.ReplaceInventory(ctx, report(ep, at, kb("KB1", false), kb("KB2", false), undated(deb("openssl", "3.0.15-1", "3.0.14-1")))); err != nil {
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
		db := next()
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
	db := next()
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

	if got := len(auditJobs(t, hs[0], protocol.AuditJobCreated)); got != clients*endpoints*rounds {
		t.Errorf("%d jobs created, want %d", got, clients*endpoints*rounds)
	}
	for c := range clients {
		seqs, err := hs[0].LastJobSeqs(ctx, fmt.Sprintf("c%d", c))
		if err != nil {
			t.Fatal(err)
		}
		for ep, seq := range seqs {
			if seq != rounds {
				t.Errorf("endpoint %s: last job number %d, want %d", ep, seq, rounds)
			}
		}
	}
	snap, err := hs[0].Snapshot(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range snap.Endpoints {
		if len(e.Updates) != 3 || !e.LastSeen.Equal(t0.Add((rounds-1)*time.Minute)) {
			t.Errorf("endpoint %s: %d updates, last seen %s; want its last report's 3 at %s", e.ID, len(e.Updates), e.LastSeen, t0.Add((rounds-1)*time.Minute))
		}
	}
}

// testConcurrentJobNumbers: writers on several handles (replicas) plan
// jobs for the same endpoints at once, each numbering from what it last
// read. No number is given twice, numbers only grow, and a writer that
// lost the race is told ErrConflict (and numbers again), never anything
// else.
func testConcurrentJobNumbers(t *testing.T, s *suite) {
	hs := s.handles(t, replicas)
	ctx := context.Background()
	enroll(t, hs[0], "ep-1", "acme")
	enroll(t, hs[0], "ep-2", "acme")
	const writers, plans = 6, 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex // guards created
		created   []store.Job
		conflicts atomic.Int64
	)
	errs := make(chan error, writers)
	for w := range writers {
		db := hs[w%len(hs)]
		wg.Go(func() {
			for p := range plans {
				key := fmt.Sprintf("w%d/p%d", w, p)
				for attempt := 0; ; attempt++ {
					if attempt == 1000 {
						errs <- fmt.Errorf("plan %s: still conflicting after %d attempts", key, attempt)
						return
					}
					jobs, err := numberedJobs(db, "acme", []store.Job{newJob("ep-1", "acme", key+"/1", "KB1"), newJob("ep-2", "acme", key+"/2", "KB1")})
					if err != nil {
						errs <- err
						return
					}
					for i := range jobs {
						jobs[i].ID = fmt.Sprintf("%s/%d", jobs[i].IdempotencyKey, jobs[i].Seq)
					}
					got, err := db.CreateJobs(ctx, "acme", jobs, t0)
					if errors.Is(err, store.ErrConflict) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("plan %s: %w (want success or ErrConflict)", key, err)
						return
					}
					if len(got) != 2 {
						errs <- fmt.Errorf("plan %s: created %d jobs, want 2", key, len(got))
						return
					}
					mu.Lock()
					created = append(created, got...)
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d plans stored, %d conflicts", writers*plans, conflicts.Load())

	seqs, err := hs[0].LastJobSeqs(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"ep-1", "ep-2"} {
		taken := map[int64]string{}
		var highest int64
		for _, j := range created {
			if j.Endpoint != ep {
				continue
			}
			if other, dup := taken[j.Seq]; dup {
				t.Errorf("%s: number %d given to %s and %s", ep, j.Seq, other, j.IdempotencyKey)
			}
			taken[j.Seq] = j.IdempotencyKey
			highest = max(highest, j.Seq)
		}
		if len(taken) != writers*plans {
			t.Errorf("%s: %d jobs created, want %d", ep, len(taken), writers*plans)
		}
		if seqs[ep] != highest {
			t.Errorf("%s: last job number %d, want the highest given, %d", ep, seqs[ep], highest)
		}
		due, err := hs[len(hs)-1].DueJobs(ctx, ep, t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != writers*plans {
			t.Errorf("%s: %d jobs due, want %d", ep, len(due), writers*plans)
		}
		for i := 1; i < len(due); i++ {
			if due[i].Seq <= due[i-1].Seq {
				t.Errorf("%s: due job %d numbered %d after %d", ep, i, due[i].Seq, due[i-1].Seq)
			}
		}
	}
	if got := len(auditJobs(t, hs[0], protocol.AuditJobCreated)); got != 2*writers*plans {
		t.Errorf("%d job-created audit entries, want %d", got, 2*writers*plans)
	}
}

// testConcurrentResults: copies of one result arrive at several handles
// (replicas) at once: exactly one is recorded, the others are duplicates.
func testConcurrentResults(t *testing.T, s *suite) {
	hs := s.handles(t, replicas)
	ctx := context.Background()
	enroll(t, hs[0], "ep-1", "acme")
	replace(t, hs[0], report("ep-1", t0, kb("KB1", false)))
	const jobs, copies = 5, 4
	var planned []store.Job
	for i := range jobs {
		planned = append(planned, newJob("ep-1", "acme", fmt.Sprintf("k%d", i), "KB1"))
	}
	created := createJobs(t, hs[0], "acme", t0, planned...)
	for _, j := range created {
		var wg sync.WaitGroup
		var recorded, duplicates atomic.Int64
		for c := range copies {
			db := hs[c%len(hs)]
			wg.Go(func() {
				rec, err := db.RecordResult(ctx, j.ID, "ep-1", []store.UpdateResult{{Update: "KB1", Result: protocol.ResultFailed, Error: "0x1"}}, t0)
				switch {
				case err != nil:
					t.Errorf("job %s: copy %d: %v", j.ID, c, err)
				case rec.Duplicate:
					duplicates.Add(1)
				default:
					recorded.Add(1)
				}
			})
		}
		wg.Wait()
		if recorded.Load() != 1 || duplicates.Load() != copies-1 {
			t.Errorf("job %s: %d copies recorded and %d duplicates, want 1 and %d", j.ID, recorded.Load(), duplicates.Load(), copies-1)
		}
	}
	ep, err := hs[0].EndpointSnapshot(ctx, "ep-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ep.Updates[0].Attempts); n != jobs {
		t.Errorf("KB1 has %d attempts, want %d (one per job)", n, jobs)
	}
	if n := len(auditJobs(t, hs[0], protocol.AuditJobResult)); n != jobs {
		t.Errorf("%d job-result audit entries, want %d", n, jobs)
	}
}

// testConcurrentExpiry: every replica expires jobs on its own timer; each
// job is expired, and audited, once.
func testConcurrentExpiry(t *testing.T, s *suite) {
	hs := s.handles(t, replicas)
	ctx := context.Background()
	const endpoints, perEndpoint = 5, 6
	var ids []string
	for e := range endpoints {
		ep := fmt.Sprintf("ep-%d", e)
		enroll(t, hs[0], ep, "acme")
		var jobs []store.Job
		for k := range perEndpoint {
			j := newJob(ep, "acme", fmt.Sprintf("%s/%d", ep, k), "KB1")
			j.NotAfter = t0.Add(time.Duration(k) * time.Minute)
			jobs = append(jobs, j)
		}
		for _, j := range createJobs(t, hs[0], "acme", t0, jobs...) {
			ids = append(ids, j.ID)
		}
	}
	var wg sync.WaitGroup
	var expired atomic.Int64
	for r := range 2 * len(hs) {
		db := hs[r%len(hs)]
		wg.Go(func() {
			for k := range perEndpoint {
				n, err := db.ExpireJobs(ctx, t0.Add(time.Duration(k)*time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				expired.Add(int64(n))
			}
		})
	}
	wg.Wait()
	if expired.Load() != int64(len(ids)) {
		t.Errorf("%d jobs expired in all, want %d", expired.Load(), len(ids))
	}
	audited := auditJobs(t, hs[0], protocol.AuditJobExpired)
	if diff := cmp.Diff(sorted(ids), sorted(audited)); diff != "" {
		t.Errorf("job-expired audit entries (-want +got):\n%s", diff)
	}
}

// testAuditPaging: a reader pages through the audit log (GET
// /v1/audit?after=) while writers on several handles append to it. Every
// page continues the last one: the reader ends up with the whole log, in
// order, nothing skipped or repeated.
func testAuditPaging(t *testing.T, s *suite) {
	hs := s.handles(t, replicas)
	ctx := context.Background()
	const writers, entries = 6, 40
	var wg sync.WaitGroup
	var done atomic.Bool
	for w := range writers {
		db := hs[w%len(hs)]
		wg.Go(func() {
			for i := range entries {
				e := protocol.AuditEntry{At: t0, Kind: protocol.AuditHalt, Client: fmt.Sprintf("w%d", w), Job: fmt.Sprint(i)}
				if err := db.AppendAudit(ctx, e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var seen []protocol.AuditEntry
	reader := make(chan error, 1)
	go func() {
		db := hs[len(hs)-1]
		after := int64(0)
		for {
			// Read the flag before the page: an empty page read after
			// the writers finished means the log is read to its end.
			finished := done.Load()
			page, err := db.Audit(ctx, after, 7)
			if err != nil {
				reader <- err
				return
			}
			for _, e := range page {
				if e.ID <= after {
					reader <- fmt.Errorf("entry %d came after %d", e.ID, after)
					return
				}
				after = e.ID
			}
			seen = append(seen, page...)
			if len(page) == 0 && finished {
				reader <- nil
				return
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	if err := <-reader; err != nil {
		t.Fatal(err)
	}
	all := auditOf(t, hs[0])
	if len(all) != writers*entries {
		t.Errorf("audit holds %d entries, want %d", len(all), writers*entries)
	}
	if diff := cmp.Diff(all, seen); diff != "" {
		t.Errorf("entries the reader saw while they were appended (-whole log +seen):\n%s", diff)
	}
}
