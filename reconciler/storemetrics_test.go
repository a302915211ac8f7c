package reconciler

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store/postgres"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// auditStore is what TestStoreMetrics writes with.
type auditStore interface {
	AppendAudit(ctx context.Context, e protocol.AuditEntry) error
	Close() error
}

// TestStoreMetrics: both stores' write counters reach the metrics.
func TestStoreMetrics(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		open func(t *testing.T) (auditStore, func() writeStats)
	}{
		{"SQLite", func(t *testing.T) (auditStore, func() writeStats) {
			db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patchline.db"))
			if err != nil {
				t.Fatal(err)
			}
			return db, sqliteStats(db)
		}},
		{"PostgreSQL", func(t *testing.T) (auditStore, func() writeStats) {
			db, err := postgres.Open(ctx, pgtest.DB(t))
			if err != nil {
				t.Fatal(err)
			}
			return db, postgresStats(db)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, stats := tt.open(t)
			defer db.Close()
			reg := prometheus.NewRegistry()
			registerStoreMetrics(reg, stats)
			for range 3 {
				if err := db.AppendAudit(ctx, protocol.AuditEntry{At: time.Now(), Kind: protocol.AuditHalt, Client: "acme"}); err != nil {
					t.Fatal(err)
				}
			}
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, f := range families {
				got[f.GetName()] = f.GetMetric()[0].GetCounter().GetValue()
			}
			// Three writes one after the other: three transactions of one.
			if got["patchline_store_write_transactions_total"] != 3 || got["patchline_store_writes_total"] != 3 {
				t.Errorf("transactions %v, writes %v; want 3 and 3", got["patchline_store_write_transactions_total"], got["patchline_store_writes_total"])
			}
			if got["patchline_store_writer_busy_seconds_total"] <= 0 {
				t.Errorf("writer busy %v s after three writes, want more than 0", got["patchline_store_writer_busy_seconds_total"])
			}
		})
	}
}
