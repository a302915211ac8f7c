package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// listen runs db.Listen until the test ends and returns the channels its
// notifications and reconnections arrive on.
func listen(t *testing.T, db *DB) (<-chan Notification, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Notification, 100)
	again := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, func(n Notification) { got <- n }, func() { again <- struct{}{} }, func(err error, d time.Duration) { t.Logf("listener: %v; again in %v", err, d) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return got, again
}

// receive returns the ids of kind received until want of them arrived.
func receive(t *testing.T, got <-chan Notification, kind string, want int) []string {
	t.Helper()
	var ids []string
	timeout := time.After(30 * time.Second)
	for len(ids) < want {
		select {
		case n := <-got:
			if n.Kind == kind {
				ids = append(ids, n.IDs...)
			}
		case <-timeout:
			t.Fatalf("received %d ids of %s, want %d", len(ids), kind, want)
		}
	}
	return ids
}

// TestNotifyReachesEveryReplica: a notification sent through one store
// reaches another's listener, long lists split under PostgreSQL's payload
// limit, and a listener whose connection is cut listens again and says so.
func TestNotifyReachesEveryReplica(t *testing.T) {
	ctx := context.Background()
	a, dsn := openTest(t)
	b := openDSN(t, dsn)
	got, again := listen(t, b)
	// The listener is up once a notification sent after it arrives.
	waitListening := func() {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			if err := a.Notify(ctx, "ping"); err != nil {
				t.Fatal(err)
			}
			select {
			case n := <-got:
				if n.Kind == "ping" {
					return
				}
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatal("the listener never received a notification")
			}
		}
	}
	waitListening()

	var ids []string
	for i := range 1000 {
		ids = append(ids, fmt.Sprintf("endpoint-%06d-abcdefgh", i))
	}
	if err := a.Notify(ctx, "replan", ids...); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, got, "replan", len(ids)); !slices.Equal(got, ids) {
		t.Errorf("received %d ids, not the %d sent in order", len(got), len(ids))
	}
	if n := len(payloads("replan", ids)); n < 3 {
		t.Errorf("%d ids went in %d payloads, want several under %d bytes", len(ids), n, maxPayload)
	}

	// Cut the listener's connection, as a database restart would.
	if _, err := a.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-again:
	case <-time.After(30 * time.Second):
		t.Fatal("the listener did not say it listens again after its connection was cut")
	}
	waitListening()
}

// TestJobsAndEndpointChangesNotify: the store's own notifications are
// sent with the writes that make them.
func TestJobsAndEndpointChangesNotify(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	got, _ := listen(t, db)
	// Enroll until the listener hears one: it may start after the first.
	for i := 0; ; i++ {
		enrollTest(t, db, fmt.Sprintf("ep-%d", i))
		select {
		case n := <-got:
			if n.Kind != NotifyEndpoint || len(n.IDs) != 1 {
				t.Fatalf("enroll notified %+v", n)
			}
		case <-time.After(200 * time.Millisecond):
			if i > 100 {
				t.Fatal("enrolling never notified")
			}
			continue
		}
		break
	}
	if _, err := db.RevokeEndpoint(ctx, "ep-0", "admin", t0); err != nil {
		t.Fatal(err)
	}
	// A late notification of an enrollment may come first.
	for !slices.Contains(receive(t, got, NotifyEndpoint, 1), "ep-0") {
	}
}
