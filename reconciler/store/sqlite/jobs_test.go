package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func TestCreateJobs(t *testing.T) {
	db, _ := openTest(t)
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
		t.Errorf("plan with a repeated key created %d jobs, want 1", len(dupInPlan))
	}

	due, err := db.DueJobs(ctx, "ep-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Job{created[0], again[0]}, due); diff != "" {
		t.Errorf("due jobs of ep-1 (-want +got):\n%s", diff)
	}

	audit, err := db.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var jobsAudited []string
	for _, e := range audit {
		if e.Kind == protocol.AuditJobCreated {
			jobsAudited = append(jobsAudited, e.Job)
		}
	}
	if diff := cmp.Diff([]string{created[0].ID, created[1].ID, again[0].ID, dupInPlan[0].ID}, jobsAudited); diff != "" {
		t.Errorf("job-created audit entries (-want +got):\n%s", diff)
	}
}

// TestCreateJobsAllOrNothing: when one job of a client's plan cannot be
// stored, none is, and no sequence number is used up.
func TestCreateJobsAllOrNothing(t *testing.T) {
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
			name:  "second job not signed",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2")},
			spoil: func(js []store.Job) { js[1].Signature = nil },
			want:  store.ErrInvalid,
		},
		{
			name:  "job not numbered",
			jobs:  []store.Job{newJob("ep-1", "acme", "k1", "KB1")},
			spoil: func(js []store.Job) { js[0].Seq = 0 },
			want:  store.ErrInvalid,
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t)
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
			next := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))
			if next[0].Seq != 1 {
				t.Errorf("next job got sequence %d, want 1: the failed plan used up numbers", next[0].Seq)
			}
		})
	}
}

// TestCreateJobsRefusesNumbersAnAgentHasSeen: a job numbered from job
// numbers read before an agent reported a higher one (after a restore from
// an old backup) is refused, so the controller numbers it again.
func TestCreateJobsRefusesNumbersAnAgentHasSeen(t *testing.T) {
	db, _ := openTest(t)
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

// TestSequenceOnlyGrows: sequence numbers continue across restarts and
// never go back, even when old jobs are removed from the table.
func TestSequenceOnlyGrows(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	enroll(t, db, "ep-2", "acme")
	createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2"), newJob("ep-2", "acme", "k3", "KB1"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k4", "KB3"))
	if got[0].Seq != 3 {
		t.Errorf("after restart ep-1's next job got sequence %d, want 3", got[0].Seq)
	}
	if _, err := db.write.Exec(`DELETE FROM jobs WHERE endpoint = 'ep-1'`); err != nil {
		t.Fatal(err)
	}
	got = createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k5", "KB4"), newJob("ep-2", "acme", "k6", "KB2"))
	if got[0].Seq != 4 || got[1].Seq != 2 {
		t.Errorf("after removing old jobs: sequences %d and %d, want 4 (ep-1) and 2 (ep-2)", got[0].Seq, got[1].Seq)
	}
}

func TestLeaseExpiryOffersJobAgain(t *testing.T) {
	db, _ := openTest(t)
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

func TestExpireJobs(t *testing.T) {
	db, _ := openTest(t)
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
	audit, err := db.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var expired []string
	for _, e := range audit {
		if e.Kind == protocol.AuditJobExpired {
			expired = append(expired, e.Job)
		}
	}
	if diff := cmp.Diff([]string{jobs[0].ID, jobs[2].ID, jobs[1].ID}, expired, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("job-expired audit entries (-want +got):\n%s", diff)
	}
}
func TestCreateJobsSurvivesReopenOfSameFileByPath(t *testing.T) {
	// A second store on the same file (a restarted controller overlapping
	// the old one during a handover) still sees a consistent state.
	path := filepath.Join(t.TempDir(), "patchd.db")
	ctx := context.Background()
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	enroll(t, a, "ep-1", "acme")
	createJobs(t, a, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := createJobs(t, b, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2"))
	if len(got) != 1 || got[0].IdempotencyKey != "k2" || got[0].Seq != 3 {
		t.Errorf("second store created %+v, want only k2, with the sequence 3 it was numbered", got)
	}
}
