package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestDatabasesAreSeparate: each DB is a new empty database of one running
// cluster, reachable over the socket and over TCP.
func TestDatabasesAreSeparate(t *testing.T) {
	ctx := context.Background()
	a, b := DB(t), DB(t)
	if a == b {
		t.Fatalf("two databases share the DSN %q", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	if _, err := cb.Exec(ctx, "SELECT * FROM t"); err == nil {
		t.Error("a table made in one database is seen in another")
	}
	var db string
	c := Shared(t)
	ct, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("over TCP: %v", err)
	}
	defer ct.Close(ctx)
	if err := ct.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != "postgres" {
		t.Errorf("current_database() = %q, %v", db, err)
	}
}

// TestStopLeavesNothing: a cluster of its own is stopped, waited for and
// removed.
func TestStopLeavesNothing(t *testing.T) {
	Shared(t) // skips or fails when PostgreSQL is missing
	c, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Stop()
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", c.Dir, err)
	}
	select {
	case <-c.done:
	default:
		t.Error("postgres still running after Stop")
	}
}
