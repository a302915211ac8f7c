package api

import (
	"context"
	"os"
	"testing"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/reconciler/store/postgres"
)

// TestMain stops the PostgreSQL cluster BenchmarkReportIngestPostgres
// started, if it ran.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// BenchmarkReportIngestPostgres is BenchmarkReportIngest with the store in
// PostgreSQL (a throwaway cluster on this machine, fsync off), a new
// database for each: the API path's rate, to set against store/postgres's
// BenchmarkRawInventory.
func BenchmarkReportIngestPostgres(b *testing.B) {
	for _, changing := range []bool{false, true} {
		name := map[bool]string{false: "repeated", true: "changing"}[changing]
		b.Run(name, func(b *testing.B) {
			db, err := postgres.Open(context.Background(), pgtest.DB(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			benchReportIngest(b, changing, func(c *Config) { c.Store = db })
		})
	}
}
