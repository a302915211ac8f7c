package reconciler

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/feeds"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
)

// exploitedNow approves, at once, every update CISA lists as exploited.
var exploitedNow = map[string][]byte{
	"cue.mod/module.cue": nightWindow["cue.mod/module.cue"],
	"fleet.cue":          aptAfterAWeek["fleet.cue"],
	"clients/acme/client.cue": []byte(`package fleet

client: {id: "acme", name: "Acme Dental", timezone: "UTC"}
baseline: approve: [{name: "exploited-now", knownExploited: true}]
`),
}

// copyFeeds copies the feeds package's test feeds into a new directory.
func copyFeeds(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("feeds", "testdata", "feeds")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestKEVListedCVEApprovesTheUpdateThatFixesIt: with CISA's catalog in the
// feeds directory, a `knownExploited: true` rule approves the KB that
// fixes a listed CVE although the endpoint did not say it was exploited; a
// catalog garbled later is refused, counted, and the good copy stays in
// force.
func TestKEVListedCVEApprovesTheUpdateThatFixesIt(t *testing.T) {
	e := newReplanEnvWith(t, exploitedNow, nil)
	ctx := context.Background()
	dir := copyFeeds(t)
	reg := prometheus.NewRegistry()
	replans := 0
	k := &feedKeeper{dir: dir, clock: e.clock, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics: metrics.NewFeeds(reg), replanAll: func() { replans++ }}
	k.load(ctx)
	e.r.feeds = k

	now := e.clock.Now()
	if err := e.db.Enroll(ctx, store.Enrollment{ID: "acme-ws-1", Client: "acme", Hostname: "ws1", NodeKeyHash: []byte("h"), EnrolledAt: now}); err != nil {
		t.Fatal(err)
	}
	report := store.Report{Endpoint: "acme-ws-1", Hostname: "ws1", OS: protocol.OS{Family: "windows"}, At: now, Seq: 1,
		Updates: []*protocol.Update{
			{ID: "KB5036000", Source: "windows-update", Name: "KB5036000", Version: "1", Category: "security",
				CVEs: []string{"CVE-2024-3400"}, Released: now.Add(-48 * time.Hour)},
			{ID: "KB5036001", Source: "windows-update", Name: "KB5036001", Version: "1", Category: "security",
				CVEs: []string{"CVE-2024-0001"}, KnownExploited: true, Released: now.Add(-48 * time.Hour)},
		}}
	if err := e.db.ReplaceInventory(ctx, report); err != nil {
		t.Fatal(err)
	}
	decisions := func() map[string]plan.Decision {
		t.Helper()
		if err := e.r.reconcile(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		due, err := e.db.DueJobs(ctx, "acme-ws-1", e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]plan.Decision{}
		for _, j := range due {
			for _, u := range j.Updates {
				got[u] = plan.Missing
			}
		}
		return got
	}
	got := decisions()
	if got["KB5036000"] != plan.Missing || got["KB5036001"] != "" {
		t.Fatalf("jobs hold %v; want KB5036000 (its CVE is in CISA's catalog), not KB5036001 (reported exploited, but CISA does not list it)", got)
	}

	// The catalog is garbled by a bad copy: refused, counted, and the good
	// one stays in force.
	kev := filepath.Join(dir, feeds.KEVFile)
	if err := os.WriteFile(kev, []byte(`{"title": "CISA Catalog", "vulnerabilities": [{"cveID": `), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(kev, later, later); err != nil {
		t.Fatal(err)
	}
	k.load(ctx)
	if _, ok := k.Feeds().KEV("CVE-2024-3400"); !ok {
		t.Error("the good KEV catalog is no longer in force after a garbled copy")
	}
	if n := counter(t, reg, "patchline_feed_errors_total", "kev"); n != 1 {
		t.Errorf("patchline_feed_errors_total{feed=kev} = %v, want 1", n)
	}
	if replans != 0 {
		t.Errorf("a refused feed re-planned every client %d times", replans)
	}
}

// counter is the value of the metric name with label feed.
func counter(t *testing.T, reg *prometheus.Registry, name, feed string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "feed" && l.GetValue() == feed {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}
