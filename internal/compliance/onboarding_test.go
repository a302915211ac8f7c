package compliance_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/compliance"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema/loader"
)

// TestOnboardingMonthHasNoInstallsNorLateOnes: a client onboarded in the
// month, whose endpoints report on day one 50 updates installed long before
// Patchline saw them, shows no install and nothing late that month: the
// store does not know when they were installed, and does not pretend it
// was at the first report.
func TestOnboardingMonthHasNoInstallsNorLateOnes(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patchline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	day1 := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	if err := db.RecordRevisions(ctx, []store.Revision{{Hash: inRevision, Status: store.RevisionApplied, At: day1.Add(-time.Hour), Client: "acme"}}); err != nil {
		t.Fatal(err)
	}
	for e := range 2 {
		id := fmt.Sprintf("acme-new-%d", e)
		if err := db.Enroll(ctx, store.Enrollment{ID: id, Client: "acme", Hostname: id, NodeKeyHash: []byte("h"), EnrolledAt: day1}); err != nil {
			t.Fatal(err)
		}
		var ups []*protocol.Update
		for k := range 25 {
			kb := fmt.Sprintf("KB50%02d", k)
			ups = append(ups, &protocol.Update{ID: kb, Source: "windows-update", Name: kb, Version: "1", Category: "security",
				Severity: "critical", Released: time.Date(2026, 6, 10, 17, 0, 0, 0, time.UTC), Installed: true})
		}
		for _, at := range []time.Time{day1, day1.Add(24 * time.Hour), day1.Add(20 * 24 * time.Hour)} {
			if err := db.ReplaceInventory(ctx, store.Report{Endpoint: id, Hostname: id, OS: protocol.OS{Family: "windows"},
				At: at.Add(time.Duration(e) * time.Minute), Seq: at.UnixNano(), Updates: ups}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := novemberFromStore(t, db)
	late := 0
	for _, in := range r.Installs {
		if in.Status == compliance.Late {
			late++
		}
	}
	if len(r.Endpoints) != 2 || len(r.Installs) != 0 || late != 0 || len(r.Breaches) != 0 {
		t.Errorf("onboarding month: %d endpoints, %d installs (%d late), %d breaches; want 2 endpoints and nothing else",
			len(r.Endpoints), len(r.Installs), late, len(r.Breaches))
	}
}

// TestUndatedUpdateIsLateFromFirstSeen: an apt update whose source gives
// no release date, first seen on November 2 and still missing on the 30th,
// breaches acme's 14-day critical SLA counted from that first sighting, and
// the report says the date is the fleet's own.
func TestUndatedUpdateIsLateFromFirstSeen(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patchline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	if err := db.RecordRevisions(ctx, []store.Revision{{Hash: inRevision, Status: store.RevisionApplied, At: seen.Add(-time.Hour), Client: "acme"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Enroll(ctx, store.Enrollment{ID: "acme-srv-9", Client: "acme", Hostname: "srv9", NodeKeyHash: []byte("h"), EnrolledAt: seen}); err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{seen, time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)} {
		err := db.ReplaceInventory(ctx, store.Report{Endpoint: "acme-srv-9", Hostname: "srv9", OS: protocol.OS{Family: "linux", Version: "debian 12"},
			At: at, Seq: int64(i + 1), Updates: []*protocol.Update{{ID: "openssl@3.0.15-1~deb12u1", Source: "apt", Name: "openssl",
				Version: "3.0.15-1~deb12u1", InstalledVersion: "3.0.14-1~deb12u2", Category: "security", Severity: "critical"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := novemberFromStore(t, db)
	if len(r.Breaches) != 1 || !r.Breaches[0].Released.Equal(seen) || r.Breaches[0].ReleasedFrom != protocol.ReleasedFirstSeen ||
		!r.Breaches[0].Due.Equal(seen.Add(14*24*time.Hour)) {
		t.Fatalf("breaches %+v; want openssl, released when first seen on %v, due 14 days later", r.Breaches, seen)
	}
	var md bytes.Buffer
	if err := r.Write(&md, "markdown"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "(first seen)") {
		t.Errorf("the markdown report does not say the release date is the first sighting:\n%s", md.String())
	}
}

// novemberFromStore builds acme's November 2026 report, as of December 2,
// from what db holds, judged by testdata/fleet at inRevision.
func novemberFromStore(t *testing.T, db *sqlite.DB) *compliance.Report {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	snap, err := db.Snapshot(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := db.Audit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := loader.New(loader.Options{Now: now}).LoadDir(ctx, "testdata/fleet")
	if err != nil {
		t.Fatal(err)
	}
	fleet.Revision = inRevision
	r, err := compliance.Build(compliance.Input{Client: "acme", Month: "2026-11", Now: now, Snapshot: snap, Audit: audit, Fleet: fleet})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
