package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

// TestReadTokenLimitedToClients: a read token limited to acme sees only
// acme's endpoints in the state export and the endpoint list, only acme's
// part of the status (and the whole fleet's revision), and only acme's
// audit entries with the whole fleet's revisions; asking for globex is
// refused.
func TestReadTokenLimitedToClients(t *testing.T) {
	e := newEnv(t)
	a1, a2 := e.enroll("WS-001"), e.enroll("WS-002")
	g := e.enrollGlobex("GX-001")
	for _, ag := range []agent{a1, g} {
		if resp := e.post(protocol.PathReport, reportFixture(t), ag.auth()...); resp.status != 200 {
			t.Fatalf("report: %d %s", resp.status, resp.body)
		}
	}
	acme := e.newToken("acme-ci", []string{"acme"}, protocol.ScopeRead)
	everyone := e.newToken("all-ci", nil, protocol.ScopeRead)

	resp := e.as(acme, http.MethodGet, "/v1/state", nil)
	if resp.status != 200 {
		t.Fatalf("state: %d %s", resp.status, resp.body)
	}
	snap, err := protocol.DecodeSnapshot(bytes.NewReader(resp.body))
	if err != nil {
		t.Fatalf("the limited export does not decode: %v", err)
	}
	var ids []string
	for _, ep := range snap.Endpoints {
		ids = append(ids, ep.ID)
	}
	if want := []string{a1.endpoint, a2.endpoint}; !slices.Equal(ids, want) {
		t.Errorf("state of the acme token holds %v, want %v", ids, want)
	}
	if resp := e.as(everyone, http.MethodGet, "/v1/state", nil); !bytes.Contains(resp.body, []byte(g.endpoint)) {
		t.Errorf("state of an unlimited read token lacks globex's endpoint: %s", resp.body)
	}

	var st protocol.Status
	if resp := e.as(acme, http.MethodGet, "/v1/status", nil); resp.status != 200 || json.Unmarshal(resp.body, &st) != nil {
		t.Fatalf("status: %d %s", resp.status, resp.body)
	}
	full := testStatus()
	want := protocol.Status{Head: full.Head, Revisions: full.Revisions[:2], Clients: full.Clients[:1]}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("status of the acme token (-want +got):\n%s", diff)
	}

	var page protocol.AuditPage
	if resp := e.as(acme, http.MethodGet, "/v1/audit", nil); resp.status != 200 || json.Unmarshal(resp.body, &page) != nil {
		t.Fatalf("audit: %d %s", resp.status, resp.body)
	}
	var seen []string
	for _, en := range page.Entries {
		seen = append(seen, string(en.Kind)+" "+en.Endpoint)
	}
	if want := []string{"enroll " + a1.endpoint, "enroll " + a2.endpoint}; !slices.Equal(seen, want) {
		t.Errorf("audit of the acme token: %v, want %v (no globex, no token entries)", seen, want)
	}

	var list protocol.EndpointList
	if resp := e.as(acme, http.MethodGet, protocol.PathEndpoints, nil); resp.status != 200 || json.Unmarshal(resp.body, &list) != nil {
		t.Fatalf("endpoints: %d %s", resp.status, resp.body)
	}
	if len(list.Endpoints) != 2 || list.Endpoints[0].ID != a1.endpoint || list.Endpoints[0].Hostname != "WS-001" {
		t.Errorf("endpoints of the acme token: %+v", list.Endpoints)
	}
	for _, tc := range []struct {
		token, query string
		code         int
		count        int
	}{
		{acme, "?client=acme", 200, 2},
		{acme, "?client=globex", 403, 0},
		{everyone, "?client=globex", 200, 1},
		{everyone, "", 200, 3},
		{everyone, "?client=Globex", 400, 0},
	} {
		resp := e.as(tc.token, http.MethodGet, protocol.PathEndpoints+tc.query, nil)
		var l protocol.EndpointList
		if resp.status == 200 {
			if err := json.Unmarshal(resp.body, &l); err != nil {
				t.Fatal(err)
			}
		}
		if resp.status != tc.code || len(l.Endpoints) != tc.count {
			t.Errorf("endpoints%s: %d with %d endpoints, want %d with %d: %s", tc.query, resp.status, len(l.Endpoints), tc.code, tc.count, resp.body)
		}
	}
}

// TestRevokedEndpointIsRefusedAtOnce: once an endpoint is revoked, its
// agent gets 401 on every route though its enrollment was cached, its
// waiting long-poll ends with a 401, its open job is not handed out, it
// stays listed as revoked, and its machine can enroll again only as a new
// endpoint.
func TestRevokedEndpointIsRefusedAtOnce(t *testing.T) {
	e := newEnv(t)
	a, other := e.enroll("WS-001"), e.enroll("WS-002")
	if resp := e.post(protocol.PathReport, reportFixture(t), a.auth()...); resp.status != 200 {
		t.Fatalf("report: %d %s", resp.status, resp.body)
	}
	job := e.createJob(a, "k1", "KB5044284")
	e.events.take()

	// The agent took its job and waits for more; its enrollment is in
	// the cache.
	if jobs, _ := e.poll(context.Background(), a, "0s"); len(jobs) != 1 {
		t.Fatalf("first poll got %d jobs, want the open one", len(jobs))
	}
	polled := make(chan response, 1)
	go func() {
		_, resp := e.poll(context.Background(), a, "30s")
		polled <- resp
	}()
	e.waitForPolls(a.endpoint, 1)
	resp := e.as(adminToken, http.MethodPost, protocol.EndpointRevokePath(a.endpoint), nil)
	if resp.status != 200 {
		t.Fatalf("revoke: %d %s", resp.status, resp.body)
	}
	var info protocol.EndpointInfo
	if err := json.Unmarshal(resp.body, &info); err != nil || info.RevokedBy != protocol.BootstrapTokenName || info.RevokedAt.IsZero() {
		t.Errorf("revoke answered %s", resp.body)
	}
	select {
	case r := <-polled:
		if r.status != 401 || !strings.Contains(r.errorBody(t).Message, "revoked") {
			t.Errorf("the waiting long-poll ended with %d %s, want 401 saying revoked", r.status, r.body)
		}
	case <-time.After(time.Minute):
		t.Fatal("the waiting long-poll was not ended by the revocation")
	}
	if diff := cmp.Diff([]string{"removed acme " + a.endpoint}, e.events.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		send func() response
	}{
		{"report", func() response { return e.post(protocol.PathReport, reportFixture(t), a.auth()...) }},
		{"poll", func() response { _, r := e.poll(context.Background(), a, "0s"); return r }},
		{"result", func() response {
			return e.post(protocol.ResultPath(job.ID), protocol.ResultRequest{Updates: []protocol.UpdateResult{
				{Update: "KB5044284", Result: protocol.ResultSucceeded}}}, a.auth()...)
		}},
	} {
		if r := tc.send(); r.status != 401 {
			t.Errorf("%s of the revoked endpoint: %d %s, want 401", tc.name, r.status, r.body)
		}
	}
	if _, r := e.poll(context.Background(), other, "0s"); r.status != 200 {
		t.Errorf("another endpoint of the client: %d %s, want 200", r.status, r.body)
	}
	if due, err := e.db.DueJobs(context.Background(), a.endpoint, e.clock.Now()); err != nil || len(due) != 0 {
		t.Errorf("jobs due for the revoked endpoint: %v %v, want none", due, err)
	}
	if strings.Contains(e.stateJSON(), a.endpoint) {
		t.Error("the revoked endpoint is in the state export")
	}
	var list protocol.EndpointList
	if r := e.as(adminToken, http.MethodGet, protocol.PathEndpoints, nil); json.Unmarshal(r.body, &list) != nil || len(list.Endpoints) != 2 || list.Endpoints[0].RevokedAt.IsZero() {
		t.Errorf("endpoint list after the revocation: %s", r.body)
	}
	if r := e.as(adminToken, http.MethodPost, protocol.EndpointRevokePath(a.endpoint), nil); r.status != 409 {
		t.Errorf("revoking twice: %d %s, want 409", r.status, r.body)
	}

	// The same machine enrolling again, with the same credentials, gets a
	// new endpoint; the revoked one stays revoked.
	again := e.enroll("WS-001")
	if again.endpoint == a.endpoint || !strings.HasPrefix(again.endpoint, a.endpoint) {
		t.Errorf("enrolled again as %s, want a new endpoint after %s", again.endpoint, a.endpoint)
	}
	if r := e.post(protocol.PathReport, reportFixture(t), again.auth()...); r.status != 200 {
		t.Errorf("the new endpoint's report: %d %s", r.status, r.body)
	}
	if r := e.post(protocol.PathReport, reportFixture(t), a.auth()...); r.status != 401 {
		t.Errorf("the revoked endpoint after its machine enrolled again: %d, want 401", r.status)
	}
}

// TestDeletedEndpointCanEnrollAgain: a deleted endpoint's key is refused
// at once, its data is gone, and its machine enrolls again under the same
// id with a new key.
func TestDeletedEndpointCanEnrollAgain(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	if resp := e.post(protocol.PathReport, reportFixture(t), a.auth()...); resp.status != 200 {
		t.Fatalf("report: %d %s", resp.status, resp.body)
	}
	e.createJob(a, "k1", "KB5044284")
	e.events.take()
	if r := e.as(adminToken, http.MethodDelete, protocol.EndpointPath(a.endpoint), nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if diff := cmp.Diff([]string{"removed acme " + a.endpoint}, e.events.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if r := e.post(protocol.PathReport, reportFixture(t), a.auth()...); r.status != 401 {
		t.Errorf("the deleted endpoint's report: %d %s, want 401", r.status, r.body)
	}
	if r := e.as(adminToken, http.MethodDelete, protocol.EndpointPath(a.endpoint), nil); r.status != 404 {
		t.Errorf("deleting twice: %d %s, want 404", r.status, r.body)
	}
	if r := e.as(adminToken, http.MethodDelete, protocol.EndpointPath("no-such\u202eendpoint"), nil); r.status != 404 {
		t.Errorf("deleting an id with a bidirectional override: %d %s, want 404", r.status, r.body)
	}

	req := enrollRequest("acme", acmeSecret, "WS-001")
	req.NodeKey = "a-new-node-key-after-the-deletion-0123456789"
	resp := e.post(protocol.PathEnroll, req)
	var er protocol.EnrollResponse
	if resp.status != 200 || json.Unmarshal(resp.body, &er) != nil || er.Endpoint != a.endpoint {
		t.Fatalf("enroll again: %d %s, want %s", resp.status, resp.body, a.endpoint)
	}
	fresh := agent{endpoint: er.Endpoint, nodeKey: req.NodeKey}
	if r := e.post(protocol.PathReport, reportFixture(t), fresh.auth()...); r.status != 200 {
		t.Errorf("the endpoint enrolled again: %d %s, want 200", r.status, r.body)
	}
	if r := e.post(protocol.PathReport, reportFixture(t), a.auth()...); r.status != 401 {
		t.Errorf("the old node key after enrolling again: %d, want 401", r.status)
	}
}

// TestReportCannotRaiseJobNumbers: past the first report after
// enrolling, a report's job number moves nothing, so an endpoint cannot
// push its next job's number wherever it likes.
func TestReportCannotRaiseJobNumbers(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	send := func(seq, jobSeq int64) {
		t.Helper()
		var rep protocol.Report
		if err := json.Unmarshal(reportFixture(t), &rep); err != nil {
			t.Fatal(err)
		}
		rep.Seq, rep.JobSeq = seq, jobSeq
		if r := e.post(protocol.PathReport, rep, a.auth()...); r.status != 200 {
			t.Fatalf("report: %d %s", r.status, r.body)
		}
	}
	send(1, 5) // first report after enrolling: the agent saw job 5 before
	if j := e.createJob(a, "k1", "KB5044284"); j.Seq != 6 {
		t.Fatalf("first job numbered %d, want 6", j.Seq)
	}
	send(2, 1<<50)
	send(3, 1<<53)
	if j := e.createJob(a, "k2", "KB5044284"); j.Seq != 7 {
		t.Errorf("job after reports claiming 2^50 and 2^53 numbered %d, want 7", j.Seq)
	}
}
