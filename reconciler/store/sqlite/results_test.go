package sqlite

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func TestRecordResult(t *testing.T) {
	ok := []store.UpdateResult{{Update: "KB1", Result: protocol.ResultSucceeded, Output: "installed"}}
	for _, tc := range []struct {
		name     string
		endpoint string
		job      func(store.Job) string
		results  []store.UpdateResult
		before   func(*testing.T, *DB, store.Job) // runs before the result
		wantDup  bool
		wantErr  error
		// wantAttempts is the number of attempts recorded for KB1 in the end.
		wantAttempts int
	}{
		{name: "first result is recorded", endpoint: "ep-1", results: ok, wantAttempts: 1},
		{
			name: "second copy from the outbox is a duplicate and changes nothing", endpoint: "ep-1", results: ok,
			before: func(t *testing.T, db *DB, j store.Job) {
				if rec, err := db.RecordResult(context.Background(), j.ID, "ep-1", ok, t0); rec.Duplicate || err != nil {
					t.Fatalf("first copy: %+v, error %v", rec, err)
				}
			},
			wantDup: true, wantAttempts: 1,
		},
		{name: "result from another endpoint is refused as not found", endpoint: "ep-2", results: ok, wantErr: store.ErrNotFound},
		{name: "result for an unknown job", endpoint: "ep-1", results: ok, job: func(store.Job) string { return "no-such-job" }, wantErr: store.ErrNotFound},
		{
			name: "result for an update the job does not contain", endpoint: "ep-1",
			results: []store.UpdateResult{{Update: "KB2", Result: protocol.ResultSucceeded}}, wantErr: store.ErrInvalid,
		},
		{
			name: "result with an unknown outcome", endpoint: "ep-1",
			results: []store.UpdateResult{{Update: "KB1", Result: "maybe"}}, wantErr: store.ErrInvalid,
		},
		{
			name: "late result for an expired job is still recorded", endpoint: "ep-1", results: ok,
			before: func(t *testing.T, db *DB, j store.Job) {
				if n, err := db.ExpireJobs(context.Background(), j.NotAfter); n != 1 || err != nil {
					t.Fatalf("expire: %d, %v", n, err)
				}
			},
			wantAttempts: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t)
			ctx := context.Background()
			enroll(t, db, "ep-1", "acme")
			enroll(t, db, "ep-2", "acme")
			replace(t, db, report("ep-1", t0, kb("KB1", false)))
			j := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))[0]
			if tc.before != nil {
				tc.before(t, db, j)
			}
			id := j.ID
			if tc.job != nil {
				id = tc.job(j)
			}
			rec, err := db.RecordResult(ctx, id, tc.endpoint, tc.results, t0.Add(time.Minute))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("RecordResult error = %v, want %v", err, tc.wantErr)
			}
			if rec.Duplicate != tc.wantDup {
				t.Errorf("duplicate = %v, want %v", rec.Duplicate, tc.wantDup)
			}
			if err == nil && rec.Ring != j.Ring {
				t.Errorf("ring = %q, want the job's %q", rec.Ring, j.Ring)
			}
			ep, err := db.EndpointSnapshot(ctx, "ep-1", t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			u := ep.Updates[0]
			if len(u.Attempts) != tc.wantAttempts {
				t.Errorf("KB1 has %d attempts, want %d", len(u.Attempts), tc.wantAttempts)
			}
			if tc.wantAttempts > 0 && (!u.Installed || u.InstalledAt == nil) {
				t.Errorf("KB1 after a succeeded result: installed %v at %v, want installed", u.Installed, u.InstalledAt)
			}
			if tc.wantErr != nil && u.InFlightJob == nil {
				t.Errorf("refused result finished the job")
			}
		})
	}
}

// TestRecordUnknownResult: an unknown result (the agent stopped while the
// job was installing) is dated by the inventory report the agent sent
// after the restart when the store holds it, and its error says what that
// inventory showed; otherwise it is dated when it arrives, for the next
// report to verify.
func TestRecordUnknownResult(t *testing.T) {
	reported, arrived := t0.Add(30*time.Second), t0.Add(time.Minute)
	agentSays := "the agent stopped while installing"
	for _, tc := range []struct {
		name string
		// after is the report stored after the job was made (Seq 2 is the
		// one the agent sent after the restart); nil for none.
		after        *store.Report
		inventorySeq int64
		wantAt       time.Time
		wantError    string
		// wantDetail is the job-result audit entry's detail.
		wantDetail string
	}{
		{
			name:  "the inventory after the restart shows it installed",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB1", true)}}, inventorySeq: 2,
			wantAt: reported, wantError: agentSays + "; verified installed by the inventory of 2026-03-10 09:00 UTC",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":1,"missing":0}}`,
		},
		{
			name:  "the inventory after the restart shows it still missing",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB1", false)}}, inventorySeq: 2,
			wantAt: reported, wantError: agentSays + "; still missing by the inventory of 2026-03-10 09:00 UTC",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":0,"missing":1}}`,
		},
		{
			name:  "a later report verifies it too",
			after: &store.Report{Seq: 5, At: reported, Updates: []*protocol.Update{kb("KB1", true)}}, inventorySeq: 2,
			wantAt: reported, wantError: agentSays + "; verified installed by the inventory of 2026-03-10 09:00 UTC",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":1,"missing":0}}`,
		},
		{
			name:  "the inventory no longer lists it",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB9", false)}}, inventorySeq: 2,
			wantAt: reported, wantError: agentSays + "; the inventory of 2026-03-10 09:00 UTC no longer lists it",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":0,"missing":1}}`,
		},
		{
			name: "the report after the restart did not arrive", inventorySeq: 2,
			wantAt: arrived, wantError: agentSays + "; the endpoint's next inventory report shows whether it was installed",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1}`,
		},
		{
			name:  "the agent could not report before sending the result",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB1", true)}}, inventorySeq: 0,
			wantAt: arrived, wantError: agentSays + "; the endpoint's next inventory report shows whether it was installed",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t)
			ctx := context.Background()
			enroll(t, db, "ep-1", "acme")
			first := report("ep-1", t0, kb("KB1", false))
			first.Seq = 1
			replace(t, db, first)
			j := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))[0]
			if tc.after != nil {
				r := report("ep-1", tc.after.At, tc.after.Updates...)
				r.Seq = tc.after.Seq
				replace(t, db, r)
			}
			// The agent's own time is not used: its clock may be off, and
			// only the controller's times compare with LastSeen.
			res := []store.UpdateResult{{Update: "KB1", Result: protocol.ResultUnknown, Error: agentSays, At: t0.Add(-time.Hour), InventorySeq: tc.inventorySeq}}
			if _, err := db.RecordResult(ctx, j.ID, "ep-1", res, arrived); err != nil {
				t.Fatal(err)
			}
			ep, err := db.EndpointSnapshot(ctx, "ep-1", arrived)
			if err != nil {
				t.Fatal(err)
			}
			var attempts []protocol.Attempt
			for _, u := range ep.Updates {
				if u.ID == "KB1" {
					attempts = u.Attempts
				}
			}
			if tc.after != nil && tc.after.Updates[0].ID != "KB1" {
				attempts = nil // KB1 is no longer reported; its attempts stay stored but unlisted
			} else if len(attempts) != 1 {
				t.Fatalf("KB1 attempts = %+v, want one", attempts)
			}
			for _, a := range attempts {
				if a.Result != protocol.ResultUnknown || !a.At.Equal(tc.wantAt) || a.Error != tc.wantError {
					t.Errorf("attempt = %s at %s %q, want unknown at %s %q", a.Result, a.At, a.Error, tc.wantAt, tc.wantError)
				}
			}
			audit, err := db.Audit(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var detail string
			for _, e := range audit {
				if e.Kind == protocol.AuditJobResult {
					detail = string(e.Detail)
				}
			}
			if detail != tc.wantDetail {
				t.Errorf("job-result detail = %s, want %s", detail, tc.wantDetail)
			}
		})
	}
}

// TestWithNoteStaysWithinTheErrorBound: the controller's note on an
// unknown outcome never makes the stored error longer than a state
// snapshot accepts, whatever the agent sent.
func TestWithNoteStaysWithinTheErrorBound(t *testing.T) {
	note := "; still missing by the inventory of 2026-03-10 09:00 UTC"
	for _, tc := range []struct {
		name, msg string
		want      string // "" to check only the bound and the note
	}{
		{"short error", "interrupted", "interrupted" + note},
		{"error at the bound", strings.Repeat("x", protocol.MaxErrorBytes), ""},
		{"multi-byte characters cut at the bound", strings.Repeat("é", protocol.MaxErrorBytes/2), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := withNote(tc.msg, note)
			if len(got) > protocol.MaxErrorBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, note) {
				t.Errorf("withNote: %d bytes, valid UTF-8 %v, ends with the note %v; want at most %d, valid, with the note",
					len(got), utf8.ValidString(got), strings.HasSuffix(got, note), protocol.MaxErrorBytes)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("withNote = %q, want %q", got, tc.want)
			}
		})
	}
}
