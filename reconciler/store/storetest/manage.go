package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// snapshotIDs lists the endpoints of the whole fleet's snapshot and of
// client's.
func snapshotIDs(t *testing.T, db Store, client string) (all, ofClient []string) {
	t.Helper()
	ctx := context.Background()
	snap, err := db.Snapshot(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := db.ClientSnapshot(ctx, client, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range snap.Endpoints {
		all = append(all, e.ID)
	}
	for _, e := range cs.Endpoints {
		ofClient = append(ofClient, e.ID)
	}
	return all, ofClient
}

// endpointAudit lists the kinds of the audit entries about endpoint.
func endpointAudit(t *testing.T, db Store, endpoint string) []protocol.AuditKind {
	t.Helper()
	var kinds []protocol.AuditKind
	for _, e := range auditOf(t, db) {
		if e.Endpoint == endpoint {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

// testRevokeEndpoint: a revoked endpoint leaves every snapshot, its open
// jobs expire with an entry saying why, a job planned for it before is
// skipped, its report is refused, and it stays listed with who revoked it
// and its history; revoking it again is a conflict.
func testRevokeEndpoint(t *testing.T, s *suite) {
	ctx := context.Background()
	db := s.open(t)
	enroll(t, db, "ep-1", "acme")
	enroll(t, db, "ep-2", "acme")
	enroll(t, db, "ep-3", "globex")
	replace(t, db, report("ep-1", t0, kb("KB1", false)))
	open := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-open", "KB1"), newJob("ep-1", "acme", "k-open-2", "KB1"))
	if err := db.LeaseJob(ctx, open[0].ID, t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}

	at := t0.Add(time.Hour)
	ep, err := db.RevokeEndpoint(ctx, "ep-1", "ops", at)
	if err != nil {
		t.Fatal(err)
	}
	if !ep.RevokedAt.Equal(at) || ep.RevokedBy != "ops" || ep.Client != "acme" || ep.Hostname != "ep-1.local" {
		t.Errorf("revoked enrollment %+v, want acme's ep-1.local revoked at %s by ops", ep, at)
	}
	if got, err := db.EndpointByID(ctx, "ep-1"); err != nil || !got.RevokedAt.Equal(at) || got.RevokedBy != "ops" {
		t.Errorf("EndpointByID after the revocation: %+v, %v", got, err)
	}
	all, acme := snapshotIDs(t, db, "acme")
	if want := []string{"ep-2", "ep-3"}; !slices.Equal(all, want) || !slices.Equal(acme, []string{"ep-2"}) {
		t.Errorf("snapshots hold %v and %v, want %v and [ep-2]", all, acme, want)
	}
	if _, err := db.EndpointSnapshot(ctx, "ep-1", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("snapshot of the revoked endpoint: %v, want not found", err)
	}
	if due, err := db.DueJobs(ctx, "ep-1", t0.Add(20*time.Minute)); err != nil || len(due) != 0 {
		t.Errorf("due jobs of the revoked endpoint: %v, %v; want none (its jobs expired)", due, err)
	}
	if created := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-late", "KB1"), newJob("ep-2", "acme", "k-other", "KB1")); len(created) != 1 || created[0].Endpoint != "ep-2" {
		t.Errorf("created %+v, want only ep-2's job: one planned for a revoked endpoint is skipped", created)
	}
	if err := db.ReplaceInventory(ctx, report("ep-1", at.Add(time.Minute))); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a revoked endpoint's report: %v, want a conflict", err)
	}
	if _, err := db.RevokeEndpoint(ctx, "ep-1", "ops", at); !errors.Is(err, store.ErrConflict) {
		t.Errorf("revoking twice: %v, want a conflict", err)
	}
	if _, err := db.RevokeEndpoint(ctx, "ep-9", "ops", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking an unknown endpoint: %v, want not found", err)
	}
	want := []protocol.AuditKind{protocol.AuditEnroll, protocol.AuditJobCreated, protocol.AuditJobCreated,
		protocol.AuditJobExpired, protocol.AuditJobExpired, protocol.AuditEndpointRevoked}
	if diff := cmp.Diff(want, endpointAudit(t, db, "ep-1")); diff != "" {
		t.Errorf("audit of ep-1 (-want +got):\n%s", diff)
	}
	for _, e := range auditOf(t, db) {
		if e.Kind == protocol.AuditJobExpired && string(e.Detail) != `{"reason":"endpoint revoked"}` {
			t.Errorf("job-expired entry of a revoked endpoint says %s, want the reason", e.Detail)
		}
		if e.Kind == protocol.AuditEndpointRevoked && string(e.Detail) != `{"hostname":"ep-1.local","by":"ops"}` {
			t.Errorf("endpoint-revoked entry says %s, want the hostname and who", e.Detail)
		}
	}

	list, err := db.Endpoints(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range list {
		ids = append(ids, e.ID)
		if e.ID == "ep-1" && (!e.RevokedAt.Equal(at) || e.RevokedBy != "ops" || !e.LastSeen.Equal(t0) || !e.EnrolledAt.Equal(t0)) {
			t.Errorf("listed %+v, want enrolled %s, revoked at %s by ops and last seen %s", e, t0, at, t0)
		}
	}
	if !slices.Equal(ids, []string{"ep-1", "ep-2", "ep-3"}) {
		t.Errorf("listed %v, want every endpoint, the revoked one too", ids)
	}
}

// testDeleteEndpoint: deleting an endpoint removes it with its inventory,
// jobs and results, keeps its audit entries, and lets its id enroll again
// as a new endpoint.
func testDeleteEndpoint(t *testing.T, s *suite) {
	ctx := context.Background()
	db := s.open(t)
	enroll(t, db, "ep-1", "acme")
	enroll(t, db, "ep-2", "acme")
	replace(t, db, report("ep-1", t0, kb("KB1", false), kb("KB2", false)))
	done := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-done", "KB1"))
	if _, err := db.RecordResult(ctx, done[0].ID, "ep-1", []store.UpdateResult{{Update: "KB1", Result: protocol.ResultFailed}}, t0); err != nil {
		t.Fatal(err)
	}
	open := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-open", "KB2"))
	if _, err := db.RevokeEndpoint(ctx, "ep-1", "ops", t0); err != nil {
		t.Fatal(err)
	}
	before := endpointAudit(t, db, "ep-1")

	ep, err := db.DeleteEndpoint(ctx, "ep-1", "ops", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ep.ID != "ep-1" || ep.Client != "acme" || ep.RevokedAt.IsZero() {
		t.Errorf("deleted %+v, want ep-1 of acme as it was, revoked", ep)
	}
	if _, err := db.EndpointByID(ctx, "ep-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EndpointByID after the deletion: %v, want not found", err)
	}
	if diff := cmp.Diff(append(before, protocol.AuditEndpointDeleted), endpointAudit(t, db, "ep-1")); diff != "" {
		t.Errorf("audit of ep-1 (-want +got):\n%s", diff)
	}
	if _, err := db.DeleteEndpoint(ctx, "ep-1", "ops", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting twice: %v, want not found", err)
	}
	if list, err := db.Endpoints(ctx, nil); err != nil || len(list) != 1 || list[0].ID != "ep-2" {
		t.Errorf("endpoints after the deletion: %+v, %v; want ep-2 alone", list, err)
	}

	// The id enrolls again: a new endpoint with none of the old one's
	// inventory, jobs or results.
	enroll(t, db, "ep-1", "acme")
	if _, err := db.RecordResult(ctx, done[0].ID, "ep-1", nil, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a result for the deleted endpoint's job: %v, want not found", err)
	}
	if err := db.LeaseJob(ctx, open[0].ID, t0.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("leasing the deleted endpoint's job: %v, want not found", err)
	}
	replace(t, db, report("ep-1", t0.Add(2*time.Hour), kb("KB1", false)))
	got, err := db.EndpointSnapshot(ctx, "ep-1", t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Updates) != 1 || len(got.Updates[0].Attempts) != 0 || got.Updates[0].InFlightJob != nil {
		t.Errorf("the endpoint enrolled again: %+v, want KB1 with no attempt and no job", got.Updates)
	}
	if all, _ := snapshotIDs(t, db, "acme"); !slices.Equal(all, []string{"ep-1", "ep-2"}) {
		t.Errorf("snapshot holds %v after enrolling again", all)
	}
}

// testEndpointsOfClients: the list is limited to the clients asked for.
func testEndpointsOfClients(t *testing.T, s *suite) {
	db := s.open(t)
	for _, e := range [][2]string{{"a-1", "acme"}, {"g-1", "globex"}, {"i-1", "initech"}, {"a-2", "acme"}} {
		enroll(t, db, e[0], e[1])
	}
	for _, tc := range []struct {
		clients []string
		want    []string
	}{
		{nil, []string{"a-1", "a-2", "g-1", "i-1"}},
		{[]string{"acme"}, []string{"a-1", "a-2"}},
		{[]string{"acme", "initech"}, []string{"a-1", "a-2", "i-1"}},
		{[]string{"umbrella"}, nil},
	} {
		list, err := db.Endpoints(context.Background(), tc.clients)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range list {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("endpoints of %v: %v, want %v", tc.clients, got, tc.want)
		}
	}
}

// testAuditForClients: a reader limited to clients gets their entries and
// the whole fleet's revisions and restores, never another client's entry
// nor token management; pages stay full.
func testAuditForClients(t *testing.T, s *suite) {
	ctx := context.Background()
	db := s.open(t)
	enroll(t, db, "a-1", "acme")
	enroll(t, db, "g-1", "globex")
	enroll(t, db, "a-2", "acme")
	if err := db.RecordRevisions(ctx, []store.Revision{
		{Hash: "c0ffee", Status: store.RevisionApplied, At: t0, Client: ""},
		{Hash: "c0ffee", Status: store.RevisionApplied, At: t0, Client: "globex"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateToken(ctx, store.Token{Name: "ci", Hash: make([]byte, 32), Scopes: []protocol.Scope{protocol.ScopeRead}, CreatedAt: t0, CreatedBy: "adminToken"}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, protocol.AuditEntry{At: t0, Kind: protocol.AuditRestore}); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Kind     protocol.AuditKind
		Client   string
		Endpoint string
	}
	read := func(clients []string, limit int) []entry {
		var out []entry
		for after := int64(0); ; {
			page, err := db.AuditFor(ctx, after, limit, clients)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				out = append(out, entry{e.Kind, e.Client, e.Endpoint})
				after = e.ID
			}
			if len(page) < limit {
				return out
			}
		}
	}
	if all := read(nil, 100); len(all) != 7 {
		t.Fatalf("%d entries in all: %v", len(all), all)
	}
	want := []entry{
		{protocol.AuditEnroll, "acme", "a-1"},
		{protocol.AuditEnroll, "acme", "a-2"},
		{protocol.AuditRevisionApplied, "", ""},
		{protocol.AuditRestore, "", ""},
	}
	for _, limit := range []int{1, 2, 100} {
		if diff := cmp.Diff(want, read([]string{"acme"}, limit)); diff != "" {
			t.Errorf("acme's audit, pages of %d (-want +got):\n%s", limit, diff)
		}
	}
	if got := read([]string{"acme", "globex"}, 100); len(got) != 6 {
		t.Errorf("acme's and globex's audit: %v, want every entry but the token's", got)
	}
	if _, err := db.AuditFor(ctx, 0, 0, []string{"acme"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AuditFor with limit 0 = %v, want ErrInvalid", err)
	}
}
