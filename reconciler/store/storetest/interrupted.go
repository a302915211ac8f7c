package storetest

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// testRecordUnknownResult: an unknown result (the agent stopped while the
// job was installing) is dated by the inventory report the agent sent
// after the restart when the store holds it, and its error says what that
// inventory showed; otherwise it is dated when it arrives, for the next
// report to verify. The agent's own time is never used: its clock may be
// off, and only the controller's times compare with LastSeen.
func testRecordUnknownResult(t *testing.T, s *suite) {
	reported, arrived := t0.Add(30*time.Second), t0.Add(time.Minute)
	agentSays := "the agent stopped while installing"
	for _, tc := range []struct {
		name string
		// after is the report stored after the job was made (Seq 2 is the
		// one the agent sent after the restart); nil for none.
		after        *store.Report
		inventorySeq int64
		// agentError is the result's error ("" for none).
		agentError string
		wantAt     time.Time
		wantError  string
		// wantDetail is the job-result audit entry's detail.
		wantDetail string
	}{
		{
			name:  "the inventory after the restart shows it installed",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB1", true)}}, inventorySeq: 2, agentError: agentSays,
			wantAt: reported, wantError: agentSays + "; verified installed by the inventory of 2026-03-10 09:00 UTC",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":1,"missing":0}}`,
		},
		{
			name:  "the inventory after the restart shows it still missing",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB1", false)}}, inventorySeq: 2, agentError: agentSays,
			wantAt: reported, wantError: agentSays + "; still missing by the inventory of 2026-03-10 09:00 UTC",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":0,"missing":1}}`,
		},
		{
			name:  "a later report verifies it too, and the agent gave no error",
			after: &store.Report{Seq: 5, At: reported, Updates: []*protocol.Update{kb("KB1", true)}}, inventorySeq: 2,
			wantAt: reported, wantError: agentSays + "; verified installed by the inventory of 2026-03-10 09:00 UTC",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":1,"missing":0}}`,
		},
		{
			name:  "the inventory no longer lists it",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB9", false)}}, inventorySeq: 2, agentError: agentSays,
			wantAt: reported, wantError: agentSays + "; the inventory of 2026-03-10 09:00 UTC no longer lists it",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":0,"missing":1}}`,
		},
		{
			name: "the report after the restart did not arrive", inventorySeq: 2, agentError: agentSays,
			wantAt: arrived, wantError: agentSays + "; the endpoint's next inventory report shows whether it was installed",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1}`,
		},
		{
			name:  "the agent could not report before sending the result",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB1", true)}}, inventorySeq: 0, agentError: agentSays,
			wantAt: arrived, wantError: agentSays + "; the endpoint's next inventory report shows whether it was installed",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1}`,
		},
		{
			name:  "an agent's error at the bound is cut to leave room for the note",
			after: &store.Report{Seq: 2, At: reported, Updates: []*protocol.Update{kb("KB1", false)}}, inventorySeq: 2,
			agentError: strings.Repeat("é", protocol.MaxErrorBytes/2),
			wantAt:     reported, wantError: "; still missing by the inventory of 2026-03-10 09:00 UTC",
			wantDetail: `{"succeeded":0,"failed":0,"refused":0,"unknown":1,"interrupted":{"inventory":"2026-03-10T09:00:30Z","installed":0,"missing":1}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := s.open(t)
			ctx := context.Background()
			enroll(t, db, "ep-1", "acme")
			replace(t, db, numbered(report("ep-1", t0, kb("KB1", false)), 1))
			j := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))[0]
			if tc.after != nil {
				replace(t, db, numbered(report("ep-1", tc.after.At, tc.after.Updates...), tc.after.Seq))
			}
			res := []store.UpdateResult{{Update: "KB1", Result: protocol.ResultUnknown, Error: tc.agentError, At: t0.Add(-time.Hour), InventorySeq: tc.inventorySeq}}
			if rec, err := db.RecordResult(ctx, j.ID, "ep-1", res, arrived); err != nil || rec.Duplicate {
				t.Fatalf("RecordResult: %+v, %v", rec, err)
			}
			ep, err := db.EndpointSnapshot(ctx, "ep-1", arrived)
			if err != nil {
				t.Fatal(err)
			}
			var attempts []protocol.Attempt
			for _, u := range ep.Updates {
				if u.ID == "KB1" {
					attempts = u.Attempts
					if u.Installed != (tc.after != nil && tc.after.Updates[0].Installed) {
						t.Errorf("KB1 installed %v: an unknown result marks nothing installed, the inventory does", u.Installed)
					}
				}
			}
			if tc.after != nil && tc.after.Updates[0].ID != "KB1" {
				attempts = nil // KB1 is no longer reported; its attempts stay stored but unlisted
			} else if len(attempts) != 1 {
				t.Fatalf("KB1 attempts = %+v, want one", attempts)
			}
			for _, a := range attempts {
				if a.Result != protocol.ResultUnknown || !a.At.Equal(tc.wantAt) || !strings.HasSuffix(a.Error, tc.wantError) {
					t.Errorf("attempt = %s at %s %q, want unknown at %s ending %q", a.Result, a.At, a.Error, tc.wantAt, tc.wantError)
				}
				if len(a.Error) > protocol.MaxErrorBytes || !utf8.ValidString(a.Error) {
					t.Errorf("attempt error of %d bytes (valid UTF-8 %v), want at most %d, valid", len(a.Error), utf8.ValidString(a.Error), protocol.MaxErrorBytes)
				}
			}
			var detail string
			for _, e := range auditOf(t, db) {
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
