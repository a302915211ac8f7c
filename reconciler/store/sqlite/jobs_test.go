package sqlite

import (
	"context"
	"testing"
)

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
