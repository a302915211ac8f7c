package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func TestRevisions(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	fleetA := store.Revision{Hash: "aaaa", Status: store.RevisionApplied, At: at(1)}
	fleetB := store.Revision{Hash: "bbbb", Status: store.RevisionRefused, At: at(2), Reason: "invalid", Problems: []string{"clients/acme/ring.cue:12:3: ring pilot: unknown window nights"}}
	acmeA := store.Revision{Hash: "aaaa", Status: store.RevisionApplied, At: at(1), Client: "acme"}
	acmeC := store.Revision{Hash: "cccc", Status: store.RevisionApplied, At: at(3), Client: "acme"}
	globexB := store.Revision{Hash: "bbbb", Status: store.RevisionRefused, At: at(2), Client: "globex", Reason: "verify", Problems: []string{"exclusion KB1: expiry missing"}}
	for _, r := range []store.Revision{fleetA, acmeA, fleetB, globexB, acmeC} {
		if err := db.RecordRevision(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := store.RevisionStatus{
		Clients: []store.ClientRevisions{
			{Client: "", LastApplied: &fleetA, LastAttempted: fleetB},
			{Client: "acme", LastApplied: &acmeC, LastAttempted: acmeC},
			{Client: "globex", LastAttempted: globexB},
		},
		Refused: []store.Revision{globexB, fleetB},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("revisions (-want +got):\n%s", diff)
	}
	limited, err := db.Revisions(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Revision{globexB}, limited.Refused); diff != "" {
		t.Errorf("one refused revision (-want +got):\n%s", diff)
	}

	audit, err := db.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []protocol.AuditKind
	for _, e := range audit {
		kinds = append(kinds, e.Kind)
	}
	wantKinds := []protocol.AuditKind{protocol.AuditRevisionApplied, protocol.AuditRevisionApplied, protocol.AuditRevisionRefused, protocol.AuditRevisionRefused, protocol.AuditRevisionApplied}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("audit kinds (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		r    store.Revision
	}{
		{"revision without hash", store.Revision{Status: store.RevisionApplied, At: t0}},
		{"revision without time", store.Revision{Hash: "dddd", Status: store.RevisionApplied}},
		{"revision with an unknown status", store.Revision{Hash: "dddd", Status: "pending", At: t0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.RecordRevision(ctx, tc.r); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("RecordRevision = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestRevisionsEmpty(t *testing.T) {
	db, _ := openTest(t)
	got, err := db.Revisions(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.RevisionStatus{Clients: []store.ClientRevisions{}, Refused: []store.Revision{}}, got); diff != "" {
		t.Errorf("revisions of a new store (-want +got):\n%s", diff)
	}
}

func TestAudit(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	entries := []protocol.AuditEntry{
		{At: t0, Kind: protocol.AuditHalt, Client: "acme", Revision: "aaaa", Detail: json.RawMessage(`{"ring":"pilot","update":"KB1","failureRate":0.4}`)},
		{At: t0.Add(time.Minute), Kind: protocol.AuditResume, Client: "acme", Revision: "bbbb"},
		{At: t0.Add(2 * time.Minute), Kind: protocol.AuditHalt, Client: "globex", Revision: "bbbb"},
	}
	for _, e := range entries {
		if err := db.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for i := range entries {
		entries[i].ID = int64(i + 1)
	}
	for _, tc := range []struct {
		name    string
		afterID int64
		limit   int
		want    []protocol.AuditEntry
	}{
		{"first page", 0, 2, entries[:2]},
		{"next page", 2, 2, entries[2:]},
		{"past the end", 3, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Audit(ctx, tc.afterID, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
		})
	}

	for _, tc := range []struct {
		name string
		e    protocol.AuditEntry
	}{
		{"entry without kind", protocol.AuditEntry{At: t0}},
		{"entry without time", protocol.AuditEntry{Kind: protocol.AuditHalt}},
		{"detail that is not JSON", protocol.AuditEntry{At: t0, Kind: protocol.AuditHalt, Detail: json.RawMessage(`{ring`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.AppendAudit(ctx, tc.e); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("AppendAudit = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := db.Audit(ctx, 0, 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Audit with limit 0 = %v, want ErrInvalid", err)
	}
}

// TestRecordRevisionsIsAllOrNothing: one commit applied to many clients is
// one transaction; a bad entry stores none of them.
func TestRecordRevisionsIsAllOrNothing(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	good := []store.Revision{
		{Hash: "abc", Status: store.RevisionApplied, At: at, Client: "acme"},
		{Hash: "abc", Status: store.RevisionApplied, At: at, Client: "globex"},
		{Hash: "abc", Status: store.RevisionApplied, At: at},
	}
	bad := append(append([]store.Revision(nil), good...), store.Revision{Hash: "abc", Status: "maybe", At: at, Client: "initech"})
	if err := db.RecordRevisions(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a batch with a bad status: %v, want ErrInvalid", err)
	}
	if st, err := db.Revisions(ctx, 10); err != nil || len(st.Clients) != 0 {
		t.Fatalf("after a refused batch: %+v, %v; want nothing stored", st, err)
	}
	if err := db.RecordRevisions(ctx, good); err != nil {
		t.Fatal(err)
	}
	st, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Clients) != 3 {
		t.Errorf("clients with a revision: %+v, want 3", st.Clients)
	}
	entries, err := db.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("audit entries: %d, want 3", len(entries))
	}
}
