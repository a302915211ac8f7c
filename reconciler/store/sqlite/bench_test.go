package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

const (
	benchEndpoints = 10_000
	benchUpdates   = 40
	benchClients   = 100
)

func benchEndpoint(i int) string { return fmt.Sprintf("ep-%05d", i) }
func benchClient(i int) string   { return fmt.Sprintf("client-%03d", i%benchClients) }

// benchReport is endpoint i's report at at: benchUpdates updates, a quarter
// of them installed.
func benchReport(i int, at time.Time) store.Report {
	r := report(benchEndpoint(i), at)
	for u := range benchUpdates {
		var up *protocol.Update
		if u%2 == 0 {
			up = kb(fmt.Sprintf("KB50%04d", u), u%4 == 0)
		} else {
			up = deb(fmt.Sprintf("pkg%02d", u), "2.0-1", "1.0-1")
		}
		r.Updates = append(r.Updates, up)
	}
	return r
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
		err := db.update(ctx, func(tx *wtx) error {
			for i := start; i < start+chunk; i++ {
				if _, err := tx.exec(enrollQuery, benchEndpoint(i), benchClient(i), benchEndpoint(i), []byte("k"), t0.UnixNano()); err != nil {
					return err
				}
				inv, err := newInventory(benchReport(i, t0))
				if err != nil {
					return err
				}
				if err := replaceInventory(tx, inv); err != nil {
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
			jobs = append(jobs, newJob(benchEndpoint(i), benchClient(i), fmt.Sprintf("bench/%d", i), "KB500000", "KB500002"))
		}
		created := createJobs(b, db, benchClient(c), t0, jobs...)
		for _, j := range created[:len(created)/2] {
			if _, err := db.RecordResult(ctx, j.ID, j.Endpoint, []store.UpdateResult{{Update: "KB500002", Result: protocol.ResultFailed}}, t0); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReplaceInventory measures one endpoint's full report
// (benchUpdates updates) in a store of benchEndpoints endpoints, each its
// own transaction (committed without waiting for the disk, as reports
// are): an endpoint's first report, a report that repeats the stored one
// (the hourly report), and one where five updates were installed since
// (the report after a job).
func BenchmarkReplaceInventory(b *testing.B) {
	db, _ := openTest(b)
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
		run(b, func(n int) store.Report {
			r := benchReport(n%benchEndpoints, later())
			return r
		})
	})
	b.Run("five-installed", func(b *testing.B) {
		run(b, func(n int) store.Report {
			r := benchReport(n%benchEndpoints, later())
			// Alternate between the stored inventory and one with five
			// more updates installed, so that every report changes five.
			if (n/benchEndpoints)%2 == 0 {
				for _, u := range r.Updates[1:6] {
					u.Installed = true
				}
			}
			return r
		})
	})
}

// BenchmarkSnapshot10k measures the planner's input for the whole fleet of
// benchEndpoints endpoints, for one client, and for one endpoint (which
// must not depend on the fleet's size).
func BenchmarkSnapshot10k(b *testing.B) {
	db, _ := openTest(b)
	populate(b, db)
	ctx := context.Background()
	now := t0.Add(time.Minute)
	b.Run("fleet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := db.Snapshot(ctx, now)
			if err != nil {
				b.Fatal(err)
			}
			if len(s.Endpoints) != benchEndpoints {
				b.Fatalf("%d endpoints", len(s.Endpoints))
			}
		}
	})
	b.Run("client", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := db.ClientSnapshot(ctx, benchClient(7), now)
			if err != nil {
				b.Fatal(err)
			}
			if len(s.Endpoints) != benchEndpoints/benchClients {
				b.Fatalf("%d endpoints", len(s.Endpoints))
			}
		}
	})
	b.Run("endpoint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e, err := db.EndpointSnapshot(ctx, benchEndpoint(4321), now)
			if err != nil {
				b.Fatal(err)
			}
			if len(e.Updates) != benchUpdates {
				b.Fatalf("%d updates", len(e.Updates))
			}
		}
	})
}
