package sqlite

import (
	"context"
	"testing"

	"github.com/patchline/patchline/reconciler/store/storetest"
)

// TestContract runs the store contract against SQLite. Reopen opens the
// same file again: a restarted controller, or a second patchd on the same
// data directory during a handover.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, _ := openTest(t)
		return db
	}, storetest.Reopen(func(t *testing.T, s storetest.Store) storetest.Store {
		db, err := Open(context.Background(), s.(*DB).path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}))
}
