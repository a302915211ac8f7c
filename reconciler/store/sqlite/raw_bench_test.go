package sqlite

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRawInventory is the floor under BenchmarkReplaceInventory:
// the same report's rows written with plain prepared statements on the
// write connection, in the same kind of transaction (synchronous=NORMAL,
// as reports commit), without the store's checks, history and writer
// queue: the endpoint's row updated, its updates deleted and inserted
// again, into the same fleet. The store's figures are read against it.
func BenchmarkRawInventory(b *testing.B) {
	db, _ := openTest(b)
	populate(b, db)
	ctx := context.Background()
	// The write pool's one connection, held for the whole benchmark:
	// nothing else writes meanwhile.
	conn, err := db.write.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		b.Fatal(err)
	}
	defer conn.ExecContext(ctx, "PRAGMA synchronous=FULL")
	updEndpoint, err := conn.PrepareContext(ctx, `UPDATE endpoints SET hostname = ?, os_family = ?, os_version = ?, labels = ?,
		last_seen = ?, reboot_pending = ?, report_seq = ? WHERE id = ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer updEndpoint.Close()
	delUpdates, err := conn.PrepareContext(ctx, `DELETE FROM updates WHERE endpoint = ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer delUpdates.Close()
	insUpdate, err := conn.PrepareContext(ctx, insUpdateQuery)
	if err != nil {
		b.Fatal(err)
	}
	defer insUpdate.Close()

	at := t0
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		at = at.Add(time.Second)
		r := benchReport(n%benchEndpoints, at)
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.StmtContext(ctx, updEndpoint).ExecContext(ctx, r.Hostname, r.OS.Family, r.OS.Version, `{"site":"hq"}`,
			r.At.UnixNano(), boolArg(r.RebootPending), r.Seq, r.Endpoint); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.StmtContext(ctx, delUpdates).ExecContext(ctx, r.Endpoint); err != nil {
			b.Fatal(err)
		}
		ins := tx.StmtContext(ctx, insUpdate)
		for _, u := range r.Updates {
			row, err := reportedRow(u)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ins.ExecContext(ctx, row.source, row.name, row.title, row.version, row.installedVersion, row.category,
				row.severity, row.cvss, row.cves, row.knownExploited, row.released, row.rebootRequired, row.requires,
				row.installed, row.installedAt, row.releasedFrom, row.sourcePackage, row.urgency, r.Endpoint, u.ID); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reports/s")
}
