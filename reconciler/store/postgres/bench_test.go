package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// The fleet of the benchmarks, as in the SQLite store's (its
// bench_test.go), so the figures compare.
const (
	benchEndpoints = 10_000
	benchUpdates   = 40
	benchClients   = 100
)

func benchEndpoint(i int) string { return fmt.Sprintf("ep-%05d", i) }
func benchClient(i int) string   { return fmt.Sprintf("client-%03d", i%benchClients) }

// benchReport is endpoint i's report at at: benchUpdates updates, a quarter
// of them installed; the SQLite benchmarks' report.
func benchReport(i int, at time.Time) store.Report {
	r := store.Report{
		Endpoint: benchEndpoint(i), Hostname: benchEndpoint(i) + ".local", OS: protocol.OS{Family: "windows", Version: "11 24H2"},
		Labels: map[string]string{"site": "hq"}, At: at,
	}
	for u := range benchUpdates {
		if u%2 == 0 {
			id := fmt.Sprintf("KB50%04d", u)
			r.Updates = append(r.Updates, &protocol.Update{
				ID: id, Source: "windows-update", Name: id, Title: "Cumulative update " + id, Version: "1",
				Category: "security", Severity: "critical", CVSS: 9.8, CVEs: []string{"CVE-2026-0001", "CVE-2026-0002"},
				KnownExploited: true, Released: t0.Add(-72 * time.Hour), RebootRequired: true, Installed: u%4 == 0,
			})
			continue
		}
		name := fmt.Sprintf("pkg%02d", u)
		r.Updates = append(r.Updates, &protocol.Update{
			ID: name + "@2.0-1", Source: "apt", Name: name, Version: "2.0-1", InstalledVersion: "1.0-1",
			Category: "bugfix", Released: t0.Add(-24 * time.Hour),
		})
	}
	return r
}

// openBench opens a store in a new database of the shared cluster (fsync
// off: the figures are the store's work, not the disk's).
func openBench(b *testing.B) *DB {
	b.Helper()
	return openDSN(b, pgtest.DB(b))
}

// populate stores a fleet of benchEndpoints endpoints with benchUpdates
// updates each, and one open job and one failed attempt on every tenth
// endpoint. It writes in large transactions: what it sets up is the
// benchmark's starting point, not what it measures.
func populate(b *testing.B, db *DB) {
	b.Helper()
	ctx := context.Background()
	const chunk = 1000
	for start := 0; start < benchEndpoints; start += chunk {
		err := db.update(ctx, func(t *wtx) error {
			for i := start; i < start+chunk; i++ {
				if _, err := t.exec(`INSERT INTO endpoints (id, client, hostname, node_key_hash, enrolled_at) VALUES ($1, $2, $3, $4, $5)`,
					benchEndpoint(i), benchClient(i), benchEndpoint(i), []byte("k"), t0.UnixNano()); err != nil {
					return err
				}
				inv, err := newInventory(benchReport(i, t0))
				if err != nil {
					return err
				}
				if err := replaceInventory(t, inv); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for c := range benchClients {
		var jobs []store.Job
		for i := c; i < benchEndpoints; i += benchClients * 10 {
			jobs = append(jobs, store.Job{Job: plan.Job{
				Endpoint: benchEndpoint(i), Client: benchClient(i), Ring: "canary", Updates: []string{"KB500000", "KB500002"},
				NotAfter: t0.Add(2 * time.Hour), Reboot: schema.RebootIfRequired, RebootDeadline: "4h", Revision: "c0ffee",
				IdempotencyKey: fmt.Sprintf("bench/%d", i),
			}, ID: fmt.Sprintf("job-%d", i), Seq: 1, Payload: []byte("p"), Signature: []byte("s")})
		}
		created, err := db.CreateJobs(ctx, benchClient(c), jobs, t0)
		if err != nil {
			b.Fatal(err)
		}
		for _, j := range created[:len(created)/2] {
			if _, err := db.RecordResult(ctx, j.ID, j.Endpoint, []store.UpdateResult{{Update: "KB500002", Result: protocol.ResultFailed}}, t0); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Vacuumed and with fresh statistics, as autovacuum would leave the
	// tables in a while; otherwise it starts during the measurement.
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplaceInventory measures one endpoint's full report
// (benchUpdates updates) in a store of benchEndpoints endpoints, each its
// own transaction (committed without waiting for the disk, as reports
// are), one at a time: an endpoint's first report, a report that repeats
// the stored one (the hourly report), and one where five updates were
// installed since (the report after a job).
func BenchmarkReplaceInventory(b *testing.B) {
	db := openBench(b)
	populate(b, db)
	ctx := context.Background()
	run := func(b *testing.B, next func(n int) store.Report) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := db.ReplaceInventory(ctx, next(n)); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reports/s")
	}
	at := t0
	later := func() time.Time { at = at.Add(time.Second); return at }
	runs := 0 // -count runs a sub-benchmark again on the same store
	b.Run("first", func(b *testing.B) {
		const enrolled = 1000
		runs++
		run(b, func(n int) store.Report {
			if n%enrolled == 0 {
				// Enroll the next endpoints outside the measurement.
				b.StopTimer()
				for i := range enrolled {
					id := fmt.Sprintf("fresh-%d-%07d", runs, n+i)
					if err := db.Enroll(ctx, store.Enrollment{ID: id, Client: "client-000", Hostname: id, NodeKeyHash: []byte("k"), EnrolledAt: t0}); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			r := benchReport(0, later())
			r.Endpoint = fmt.Sprintf("fresh-%d-%07d", runs, n)
			return r
		})
	})
	b.Run("unchanged", func(b *testing.B) {
		run(b, func(n int) store.Report { return benchReport(n%benchEndpoints, later()) })
	})
	reports := 0 // counts on across -count runs, unlike n
	b.Run("five-installed", func(b *testing.B) {
		run(b, func(int) store.Report {
			k := reports
			reports++
			r := benchReport(k%benchEndpoints, later())
			// Alternate between the stored inventory and one with five
			// more updates installed, so that every report changes five
			// (in every -count run: the SQLite benchmark's next runs,
			// counting from 0 again, repeat what the first stored).
			if (k/benchEndpoints)%2 == 0 {
				for _, u := range r.Updates[1:6] {
					u.Installed = true
				}
			}
			return r
		})
	})
}

// BenchmarkRawInventory is the floor under BenchmarkReplaceInventory:
// the same report's rows written with plain prepared statements in the
// same kind of transaction (synchronous_commit off), without the store's
// checks and history: the endpoint's row updated, its updates deleted and
// inserted again, all in one pipelined round trip, into the same fleet.
// The store's figures are read against it.
func BenchmarkRawInventory(b *testing.B) {
	db := openBench(b)
	populate(b, db)
	ctx := context.Background()
	at := t0
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		at = at.Add(time.Second)
		r := benchReport(n%benchEndpoints, at)
		tx, err := db.pool.BeginTx(ctx, lazyTx)
		if err != nil {
			b.Fatal(err)
		}
		batch := &pgx.Batch{}
		batch.Queue(`UPDATE endpoints SET hostname = $1, os_family = $2, os_version = $3, labels = $4, last_seen = $5,
			reboot_pending = $6, report_seq = $7 WHERE id = $8`,
			r.Hostname, r.OS.Family, r.OS.Version, `{"site":"hq"}`, r.At.UnixNano(), r.RebootPending, r.Seq, r.Endpoint)
		batch.Queue(`DELETE FROM updates WHERE endpoint = $1`, r.Endpoint)
		for _, u := range r.Updates {
			row := reportedRow(u)
			batch.Queue(insUpdateQuery, row.source, row.name, row.title, row.version, row.installedVersion, row.category,
				row.severity, row.cvss, row.cves, row.knownExploited, row.released, row.rebootRequired, row.requires,
				row.installed, row.installedAt, row.releasedFrom, row.sourcePackage, row.urgency, r.Endpoint, u.ID)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkSnapshot10k measures the planner's input for the whole fleet of
// benchEndpoints endpoints, for one client, and for one endpoint (which
// must not depend on the fleet's size).
func BenchmarkSnapshot10k(b *testing.B) {
	db := openBench(b)
	populate(b, db)
	ctx := context.Background()
	now := t0.Add(time.Minute)
	for _, tc := range []struct {
		name string
		get  func() (int, error)
		want int
	}{
		{"fleet", func() (int, error) { s, err := db.Snapshot(ctx, now); return lenEndpoints(s), err }, benchEndpoints},
		{"client", func() (int, error) {
			s, err := db.ClientSnapshot(ctx, benchClient(7), now)
			return lenEndpoints(s), err
		}, benchEndpoints / benchClients},
		{"endpoint", func() (int, error) {
			e, err := db.EndpointSnapshot(ctx, benchEndpoint(4321), now)
			if err != nil {
				return 0, err
			}
			return len(e.Updates), nil
		}, benchUpdates},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n, err := tc.get()
				if err != nil {
					b.Fatal(err)
				}
				if n != tc.want {
					b.Fatalf("%d, want %d", n, tc.want)
				}
			}
		})
	}
}

func lenEndpoints(s *protocol.Snapshot) int {
	if s == nil {
		return 0
	}
	return len(s.Endpoints)
}
