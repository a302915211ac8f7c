package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// expireLease ends the lease now, as the database's clock running past
// expires_at would: the tests never wait for a lease to run out.
func expireLease(t *testing.T, db *DB) {
	t.Helper()
	if _, err := db.pool.Exec(context.Background(), `UPDATE leader SET expires_at = now() - interval '1 millisecond'`); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseChangesHandsOnlyWhenExpired walks two replicas on one
// database through taking, renewing, losing and taking over the lease.
func TestLeaseChangesHandsOnlyWhenExpired(t *testing.T) {
	ctx := context.Background()
	a, dsn := openTest(t)
	b := openDSN(t, dsn)
	const ttl = time.Minute

	type step struct {
		name    string
		db      *DB
		replica string
		expire  bool
		want    int64
		leader  string
	}
	steps := []step{
		{name: "the first replica to ask takes the lease, token 1", db: a, replica: "a", want: 1, leader: "a"},
		{name: "another replica is refused while it runs", db: b, replica: "b", want: 0, leader: "a"},
		{name: "the holder renews it under the same token", db: a, replica: "a", want: 1, leader: "a"},
		{name: "once expired, another replica takes it over with a new token", db: b, replica: "b", expire: true, want: 2, leader: "b"},
		{name: "the former holder is refused", db: a, replica: "a", want: 0, leader: "b"},
		{name: "a holder whose lease expired unclaimed takes a new term", db: b, replica: "b", expire: true, want: 3, leader: "b"},
	}
	for _, s := range steps {
		if s.expire {
			expireLease(t, a)
		}
		got, err := s.db.AcquireLease(ctx, s.replica, "run-"+s.replica, ttl)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: token %d, want %d", s.name, got, s.want)
		}
		l, err := a.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l.Holder != s.leader {
			t.Errorf("%s: leader %q, want %q", s.name, l.Holder, s.leader)
		}
	}

	// A clean shutdown releases the lease at once.
	if err := b.ReleaseLease(ctx, "run-b"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.AcquireLease(ctx, "a", "run-a", ttl); err != nil || got != 4 {
		t.Errorf("after the holder released it: token %d, %v; want 4", got, err)
	}
	// The same name in another run (a restart) waits out the old run's lease.
	if got, err := b.AcquireLease(ctx, "a", "run-a2", ttl); err != nil || got != 0 {
		t.Errorf("a restarted replica under the same name: token %d, %v; want 0", got, err)
	}
}

// TestFencingRefusesAFormerLeader: once another replica took the lease
// over, every leader-only write of the former leader fails with ErrFenced
// and leaves nothing behind, while the new leader's jobs carry its token.
func TestFencingRefusesAFormerLeader(t *testing.T) {
	ctx := context.Background()
	old, dsn := openTest(t)
	next := openDSN(t, dsn)
	for _, db := range []*DB{old, next} {
		db.EnableFencing()
	}
	enrollTest(t, old, "ep-1")
	job := func(n int) []store.Job {
		return []store.Job{{Job: plan.Job{
			Endpoint: "ep-1", Ring: "canary", Updates: []string{"KB1"}, NotAfter: t0.Add(time.Hour),
			Reboot: schema.RebootIfRequired, Revision: "c0ffee", IdempotencyKey: fmt.Sprintf("key-%d", n),
		}, ID: fmt.Sprintf("job-%d", n), Seq: int64(n), Payload: []byte("p"), Signature: []byte("s")}}
	}

	if _, err := old.CreateJobs(ctx, "acme", job(1), t0); !errors.Is(err, ErrFenced) {
		t.Fatalf("a replica that never held the lease created jobs: %v", err)
	}
	token, err := old.AcquireLease(ctx, "old", "run-old", time.Minute)
	if err != nil || token == 0 {
		t.Fatalf("acquire: %d, %v", token, err)
	}
	old.SetFence(token)
	if _, err := old.CreateJobs(ctx, "acme", job(1), t0); err != nil {
		t.Fatalf("the leader could not create a job: %v", err)
	}

	expireLease(t, old)
	newToken, err := next.AcquireLease(ctx, "next", "run-next", time.Minute)
	if err != nil || newToken != token+1 {
		t.Fatalf("takeover: token %d, %v; want %d", newToken, err, token+1)
	}
	next.SetFence(newToken)

	writes := []struct {
		name  string
		write func(db *DB) error
	}{
		{"create jobs", func(db *DB) error { _, err := db.CreateJobs(ctx, "acme", job(2), t0); return err }},
		{"expire jobs", func(db *DB) error { _, err := db.ExpireJobs(ctx, t0.Add(2*time.Hour)); return err }},
		{"record revisions", func(db *DB) error {
			return db.RecordRevisions(ctx, []store.Revision{{Hash: "beef", Status: store.RevisionApplied, At: t0, Client: "acme"}})
		}},
		{"record halts", func(db *DB) error {
			_, err := db.RecordHalts(ctx, "acme", "beef", []protocol.Halt{{Ring: "canary", Update: "KB1", Reason: "failed"}}, t0)
			return err
		}},
	}
	for i, w := range writes {
		err := w.write(old)
		if !errors.Is(err, ErrFenced) || !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s by the former leader: %v, want ErrFenced", w.name, err)
		}
		if got := old.FencedWrites(); got != int64(2+i) {
			t.Errorf("%s: %d fenced writes counted, want %d", w.name, got, 2+i)
		}
	}
	var fences []int64
	rows, err := old.pool.Query(ctx, `SELECT coalesce(fence, 0) FROM jobs ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f int64
		if err := rows.Scan(&f); err != nil {
			t.Fatal(err)
		}
		fences = append(fences, f)
	}
	if len(fences) != 1 || fences[0] != token {
		t.Errorf("jobs carry fencing tokens %v, want only the first leader's job with %d", fences, token)
	}

	for _, w := range writes {
		if err := w.write(next); err != nil {
			t.Errorf("%s by the new leader: %v", w.name, err)
		}
	}
}
