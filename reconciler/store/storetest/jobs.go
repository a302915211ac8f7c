package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func testCreateJobs(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	enroll(t, db, "ep-2", "acme")

	planned := []store.Job{
		newJob("ep-1", "acme", "k1", "KB5001", "KB5002"),
		newJob("ep-2", "", "k2", "KB5001"),
	}
	created := createJobs(t, db, "acme", t0, planned...)
	want := []store.Job{planned[0], planned[1]}
	for i := range want {
		want[i].Client, want[i].Seq, want[i].State, want[i].CreatedAt = "acme", 1, store.JobOpen, t0
	}
	ignoreIdentity := cmpopts.IgnoreFields(store.Job{}, "ID", "Payload", "Signature")
	for _, j := range created {
		if string(j.Payload) != fmt.Sprintf("%s/%s/%d", j.Endpoint, j.ID, j.Seq) || string(j.Signature) != "sig:"+string(j.Payload) {
			t.Errorf("job %+v: stored without the payload and signature it came with", j)
		}
	}
	if diff := cmp.Diff(want, created, ignoreIdentity); diff != "" {
		t.Errorf("created jobs (-want +got):\n%s", diff)
	}
	if created[0].ID == created[1].ID {
		t.Errorf("two jobs share id %s", created[0].ID)
	}

	// The controller re-plans (after a crash, or a burst of reports): the
	// same keys come again with one new job. It numbered k1 2 and k3 3; k1
	// is skipped, and the gap it leaves is fine: numbers only have to grow.
	again := createJobs(t, db, "acme", t0.Add(time.Minute), append(planned, newJob("ep-1", "acme", "k3", "KB5003"))...)
	if len(again) != 1 || again[0].IdempotencyKey != "k3" || again[0].Seq != 3 {
		t.Errorf("re-plan created %+v, want only k3 with sequence 3", again)
	}
	// Keys repeated inside one plan are stored once.
	dupInPlan := createJobs(t, db, "acme", t0, newJob("ep-2", "acme", "k4", "KB5004"), newJob("ep-2", "acme", "k4", "KB5004"))
	if len(dupInPlan) != 1 {
		t.Fatalf("plan with a repeated key created %d jobs, want 1", len(dupInPlan))
	}
	// A plan whose every key is stored creates nothing and changes no
	// number.
	if none, err := db.CreateJobs(ctx, "acme", number(t, db, "acme", planned), t0); err != nil || len(none) != 0 {
		t.Errorf("plan of stored keys: created %+v, error %v; want nothing", none, err)
	}
	seqs, err := db.LastJobSeqs(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"ep-1": 3, "ep-2": 2}, seqs); diff != "" {
		t.Errorf("last job numbers (-want +got):\n%s", diff)
	}
	if seqs, err := db.LastJobSeqs(ctx, "initech"); err != nil || len(seqs) != 0 {
		t.Errorf("last job numbers of a client without endpoints: %v, %v", seqs, err)
	}

	due, err := db.DueJobs(ctx, "ep-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Job{created[0], again[0]}, due); diff != "" {
		t.Errorf("due jobs of ep-1 (-want +got):\n%s", diff)
	}

	if diff := cmp.Diff([]string{created[0].ID, created[1].ID, again[0].ID, dupInPlan[0].ID}, auditJobs(t, db, protocol.AuditJobCreated)); diff != "" {
		t.Errorf("job-created audit entries (-want +got):\n%s", diff)
	}
}

// testCreateJobsAllOrNothing: when one job of a client's plan cannot be
// stored, none is, and no sequence number is used up.
func testCreateJobsAllOrNothing(t *testing.T, s *suite) {
	for _, tc := range []struct {
		name string
		jobs []store.Job
		// spoil, when set, changes the numbered jobs before they are stored.
		spoil func(js []store.Job)
		want  error
	}{
		{
			name: "endpoint never enrolled",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-9", "acme", "k2", "KB1")},
			want: store.ErrNotFound,
		},
		{
			name: "endpoint of another client",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-g", "", "k2", "KB1")},
			want: store.ErrConflict,
		},
		{
			name: "job names another client",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-g", "globex", "k2", "KB1")},
			want: store.ErrInvalid,
		},
		{
			name:  "second job numbered at a number already taken",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2")},
			spoil: func(js []store.Job) { js[1].Seq = js[0].Seq },
			want:  store.ErrConflict,
		},
		{
			name:  "second job numbered below the first",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2")},
			spoil: func(js []store.Job) { js[0].Seq, js[1].Seq = 5, 4 },
			want:  store.ErrConflict,
		},
		{
			name:  "second job not signed",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2")},
			spoil: func(js []store.Job) { js[1].Signature = nil },
			want:  store.ErrInvalid,
		},
		{
			name:  "job without payload",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1")},
			spoil: func(js []store.Job) { js[0].Payload = nil },
			want:  store.ErrInvalid,
		},
		{
			name:  "job not numbered",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1")},
			spoil: func(js []store.Job) { js[0].Seq = 0 },
			want:  store.ErrInvalid,
		},
		{
			name:  "job without id",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1")},
			spoil: func(js []store.Job) { js[0].ID = "" },
			want:  store.ErrInvalid,
		},
		{
			name: "job without endpoint",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("", "acme", "k2", "KB2")},
			want: store.ErrInvalid,
		},
		{
			name: "job without idempotency key",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "", "KB2")},
			want: store.ErrInvalid,
		},
		{
			name: "job without updates",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2")},
			want: store.ErrInvalid,
		},
		{
			name: "not-after time beyond what the store can hold",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), func() store.Job {
				j := newJob("ep-1", "acme", "k2", "KB2")
				j.NotAfter = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
				return j
			}()},
			want: store.ErrInvalid,
		},
		{
			name: "job without not-after time",
			jobs: []store.Job{newJob("ep-1", "acme", "k1", "KB1"), func() store.Job {
				j := newJob("ep-1", "acme", "k2", "KB2")
				j.NotAfter = time.Time{}
				return j
			}()},
			want: store.ErrInvalid,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := s.open(t)
			ctx := context.Background()
			enroll(t, db, "ep-1", "acme")
			enroll(t, db, "ep-g", "globex")
			jobs := number(t, db, "acme", tc.jobs)
			if tc.spoil != nil {
				tc.spoil(jobs)
			}
			_, err := db.CreateJobs(ctx, "acme", jobs, t0)
			if err == nil || !errors.Is(err, tc.want) {
				t.Fatalf("CreateJobs error = %v, want %v", err, tc.want)
			}
			due, err := db.DueJobs(ctx, "ep-1", t0)
			if err != nil {
				t.Fatal(err)
			}
			if len(due) != 0 {
				t.Errorf("%d jobs stored from a failed plan", len(due))
			}
			if created := auditJobs(t, db, protocol.AuditJobCreated); len(created) != 0 {
				t.Errorf("job-created audit entries of a failed plan: %v", created)
			}
			next := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))
			if next[0].Seq != 1 {
				t.Errorf("next job got sequence %d, want 1: the failed plan used up numbers", next[0].Seq)
			}
		})
	}
}

// testCreateJobsRefusesSeenNumbers: a job numbered from job numbers read
// before an agent reported a higher one (after a restore from an old
// backup) is refused, so the controller numbers it again.
func testCreateJobsRefusesSeenNumbers(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	jobs := number(t, db, "acme", []store.Job{newJob("ep-1", "acme", "k1", "KB1")})
	if err := db.RaiseJobSeq(ctx, "ep-1", 7); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateJobs(ctx, "acme", jobs, t0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateJobs of a job numbered 1 after the agent saw 7: error %v, want a conflict", err)
	}
	created := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))
	if created[0].Seq != 8 {
		t.Errorf("numbered again: sequence %d, want 8", created[0].Seq)
	}
}

func testLeaseExpiry(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	jobs := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2"))
	leaseEnd := t0.Add(10 * time.Minute)
	if err := db.LeaseJob(ctx, jobs[0].ID, leaseEnd); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		want []string // job keys
	}{
		// The agent refuses a sequence number below one it has seen, so k2
		// must not overtake k1 while k1 may still reach the agent.
		{"leased job and the newer ones wait during its lease", t0.Add(time.Minute), nil},
		{"leased job is offered again when its lease ends", leaseEnd, []string{"k1", "k2"}},
		{"nothing is offered after the window", t0.Add(2 * time.Hour), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, err := db.DueJobs(ctx, "ep-1", tc.now)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, j := range due {
				keys = append(keys, j.IdempotencyKey)
			}
			if diff := cmp.Diff(tc.want, keys); diff != "" {
				t.Errorf("due jobs (-want +got):\n%s", diff)
			}
		})
	}
	due, err := db.DueJobs(ctx, "ep-1", leaseEnd)
	if err != nil {
		t.Fatal(err)
	}
	if due[0].State != store.JobLeased || !due[0].LeaseUntil.Equal(leaseEnd) {
		t.Errorf("re-offered job: state %s lease until %s, want leased until %s", due[0].State, due[0].LeaseUntil, leaseEnd)
	}
	if due, err := db.DueJobs(ctx, "ep-unknown", leaseEnd); err != nil || len(due) != 0 {
		t.Errorf("due jobs of an unknown endpoint: %v, %v; want none", due, err)
	}

	// Re-leasing a leased job extends it; leasing a finished job is a
	// conflict; an unknown job is not found.
	if err := db.LeaseJob(ctx, jobs[0].ID, leaseEnd.Add(time.Hour)); err != nil {
		t.Errorf("re-lease: %v", err)
	}
	if _, err := db.RecordResult(ctx, jobs[1].ID, "ep-1", nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := db.LeaseJob(ctx, jobs[1].ID, leaseEnd); !errors.Is(err, store.ErrConflict) {
		t.Errorf("lease of finished job: %v, want ErrConflict", err)
	}
	if err := db.LeaseJob(ctx, "no-such-job", leaseEnd); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lease of unknown job: %v, want ErrNotFound", err)
	}
}

func testExpireJobs(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	short := newJob("ep-1", "acme", "k1", "KB1")
	short.NotAfter = t0.Add(time.Hour)
	long := newJob("ep-1", "acme", "k2", "KB2")
	long.NotAfter = t0.Add(3 * time.Hour)
	leased := newJob("ep-1", "acme", "k3", "KB3")
	leased.NotAfter = t0.Add(time.Hour)
	done := newJob("ep-1", "acme", "k4", "KB4")
	done.NotAfter = t0.Add(time.Hour)
	jobs := createJobs(t, db, "acme", t0, short, long, leased, done)
	if err := db.LeaseJob(ctx, jobs[2].ID, t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordResult(ctx, jobs[3].ID, "ep-1", nil, t0); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		now  time.Time
		want int
	}{
		{"nothing expires inside the window", t0.Add(59 * time.Minute), 0},
		{"open and leased jobs expire at their not-after time, finished ones stay done", t0.Add(time.Hour), 2},
		{"expiring again finds nothing new", t0.Add(2 * time.Hour), 0},
		{"the longer job expires later", t0.Add(3 * time.Hour), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := db.ExpireJobs(ctx, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("expired %d jobs, want %d", n, tc.want)
			}
		})
	}
	expired := auditJobs(t, db, protocol.AuditJobExpired)
	if diff := cmp.Diff([]string{jobs[0].ID, jobs[2].ID, jobs[1].ID}, expired, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("job-expired audit entries (-want +got):\n%s", diff)
	}
	if err := db.LeaseJob(ctx, jobs[0].ID, t0.Add(4*time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("lease of an expired job: %v, want ErrConflict", err)
	}
}

// testJobLife: an endpoint enrolls and reports, the controller plans a
// job for it, the agent picks the job up and answers twice (its outbox
// retrying); the answer shows in the next snapshot, once.
func testJobLife(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC)
	enroll(t, db, "ep-1", "acme")
	replace(t, db, store.Report{
		Endpoint: "ep-1", Hostname: "reception-pc", OS: protocol.OS{Family: "windows"}, At: now,
		Updates: []*protocol.Update{{ID: "KB5001", Source: "windows-update", Category: "security"}},
	})
	j := newJob("ep-1", "acme", "ep-1/KB5001/c0ffee", "KB5001")
	j.NotAfter = now.Add(4 * time.Hour)
	planned := number(t, db, "acme", []store.Job{j})
	if _, err := db.CreateJobs(ctx, "acme", planned, now); err != nil {
		t.Fatal(err)
	}
	if again, err := db.CreateJobs(ctx, "acme", planned, now); err != nil || len(again) != 0 {
		t.Errorf("planning the same job again: created %d, error %v; want nothing", len(again), err)
	}
	due, err := db.DueJobs(ctx, "ep-1", now.Add(time.Minute))
	if err != nil || len(due) != 1 || due[0].Seq != 1 {
		t.Fatalf("due: %+v, %v; want the job numbered 1", due, err)
	}
	if err := db.LeaseJob(ctx, due[0].ID, now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	result := []store.UpdateResult{{Update: "KB5001", Result: protocol.ResultSucceeded, At: now.Add(5 * time.Minute)}}
	for i, wantDup := range []bool{false, true} {
		rec, err := db.RecordResult(ctx, due[0].ID, "ep-1", result, now.Add(6*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Duplicate != wantDup || rec.Ring != "canary" {
			t.Errorf("copy %d of the result: %+v, want duplicate %v in ring canary", i+1, rec, wantDup)
		}
	}
	ep, err := db.EndpointSnapshot(ctx, "ep-1", now.Add(7*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	u := ep.Updates[0]
	if !u.Installed || u.InstalledAt == nil || !u.InstalledAt.Equal(now.Add(5*time.Minute)) || len(u.Attempts) != 1 || u.InFlightJob != nil {
		t.Errorf("KB5001 after the job: %+v, want installed at 22:05 with one attempt and no job in flight", u)
	}
	if due, err := db.DueJobs(ctx, "ep-1", now.Add(7*time.Minute)); err != nil || len(due) != 0 {
		t.Errorf("due after the result: %v, %v; want nothing", due, err)
	}
}
