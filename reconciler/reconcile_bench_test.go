package reconciler

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/internal/plangen"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// Shape of the reconcile benchmark's fleets: every client has the same
// size, so a bigger fleet only means more clients.
const (
	benchClientSize = 100
	benchUpdates    = 5
)

var benchNow = time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)

// populatedDB returns the path of a closed SQLite store holding a fleet of
// n endpoints with benchUpdates updates each, removed when b ends. It is
// written on tmpfs when /dev/shm exists, because 2n fsync'd setup
// transactions on a disk would take minutes; the benchmark runs on a copy
// on the ordinary disk.
func populatedDB(b *testing.B, n int) string {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "patchline-bench-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "patchline.db")
	if err := populate(path, n); err != nil {
		b.Fatal(err)
	}
	return path
}

func populate(path string, n int) error {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	snap := plangen.Snapshot(n/benchClientSize, n, benchUpdates, benchNow)
	for _, ep := range snap.Endpoints {
		if err := db.Enroll(ctx, store.Enrollment{ID: ep.ID, Client: ep.Client, Hostname: ep.Hostname,
			NodeKeyHash: []byte("bench"), EnrolledAt: benchNow.Add(-time.Hour)}); err != nil {
			return fmt.Errorf("enroll %s: %w", ep.ID, err)
		}
		if err := db.ReplaceInventory(ctx, store.Report{Endpoint: ep.ID, Hostname: ep.Hostname, OS: ep.OS,
			Labels: ep.Labels, Updates: ep.Updates, At: ep.LastSeen}); err != nil {
			return fmt.Errorf("report %s: %w", ep.ID, err)
		}
	}
	return nil
}

// staticPolicy is a policySource of fixed policies.
type staticPolicy map[string]appliedClient

func (p staticPolicy) Policy(client string) (appliedClient, bool) {
	pc, ok := p[client]
	return pc, ok
}

// benchReplanner is a replanner on a copy of the populated store, with every
// client's policy from plangen.Fleet applied and a clock stopped at
// benchNow.
func benchReplanner(b *testing.B, n int) *replanner {
	src := populatedDB(b, n)
	raw, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), storeFile)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	fleet := plangen.Fleet(n / benchClientSize)
	policy := make(staticPolicy)
	for id, cl := range fleet.Clients {
		policy[id] = appliedClient{revision: fleet.Revision, client: cl}
	}
	clk := clock.NewFake(benchNow)
	r := newReplanner(clk, slog.New(slog.NewTextHandler(io.Discard, nil)), db, policy,
		metrics.New(prometheus.NewRegistry()), key, newQueue(clk))
	r.notify = func(...string) {}
	return r
}

// BenchmarkReconcileAfterReport measures the re-plan one endpoint's report
// causes (reconcile of its client: read the client's state, plan it, sign
// and store any new jobs) in fleets of 1,000 and 100,000 endpoints whose
// clients all have benchClientSize endpoints. The cost follows the client,
// not the fleet: the two figures should be about equal.
func BenchmarkReconcileAfterReport(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("fleet=%d", n), func(b *testing.B) {
			r := benchReplanner(b, n)
			ctx := context.Background()
			client := plangen.ClientID(3)
			// The first re-plan creates the client's jobs; the measured
			// ones are the steady state of reports arriving while they run.
			if err := r.reconcile(ctx, client); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := r.reconcile(ctx, client); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cs := r.statuses()
			if len(cs) != 1 || cs[0].Endpoints != benchClientSize {
				b.Fatalf("summaries %+v, want client %s with %d endpoints", cs, client, benchClientSize)
			}
		})
	}
}
