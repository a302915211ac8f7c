package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// fleet sets up two clients: acme with a reporting Windows desktop and a
// Debian server, and an endpoint that enrolled but never reported; globex
// with one desktop. It returns the jobs it created: one finished with a
// failure on ep-win (acme), one still open on ep-deb (acme).
func fleet(t *testing.T, db Store) (failed, open store.Job) {
	t.Helper()
	ctx := context.Background()
	enroll(t, db, "ep-win", "acme")
	enroll(t, db, "ep-deb", "acme")
	enroll(t, db, "ep-new", "acme")
	enroll(t, db, "ep-glx", "globex")

	replace(t, db, report("ep-win", t0.Add(time.Minute), kb("KB5002", false), kb("KB5001", true)))
	deb1 := report("ep-deb", t0.Add(2*time.Minute),
		deb("openssl", "3.0.15-1", "3.0.14-1"), deb("libssl3", "3.0.15-1", "3.0.14-1", "openssl@3.0.15-1"))
	deb1.OS = protocol.OS{Family: "linux", Version: "debian 12"}
	deb1.Labels = map[string]string{"role": "server", "site": "dc1"}
	deb1.RebootPending = true
	replace(t, db, deb1)
	replace(t, db, report("ep-glx", t0.Add(3*time.Minute), kb("KB5001", false)))

	jobs := createJobs(t, db, "acme", t0.Add(5*time.Minute),
		newJob("ep-win", "acme", "acme/ep-win/1", "KB5002"),
		newJob("ep-deb", "acme", "acme/ep-deb/1", "openssl@3.0.15-1", "libssl3@3.0.15-1"))
	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-win", []store.UpdateResult{
		{Update: "KB5002", Result: protocol.ResultFailed, Error: "0x80070005", Output: "access denied", At: t0.Add(20 * time.Minute)},
	}, t0.Add(21*time.Minute)); err != nil {
		t.Fatal(err)
	}
	return jobs[0], jobs[1]
}

// wantFleet is what fleet's endpoints look like in a snapshot at now, in
// id order.
func wantFleet(failed, open store.Job, now time.Time) []*protocol.Endpoint {
	var inFlight *string
	if now.Before(open.NotAfter) {
		inFlight = &open.ID
	}
	// Every update here has the vendor's release time; KB5001 was
	// installed before ep-win first reported, so its install time is not
	// known.
	openssl := deb("openssl", "3.0.15-1", "3.0.14-1")
	openssl.InFlightJob = inFlight
	libssl := deb("libssl3", "3.0.15-1", "3.0.14-1", "openssl@3.0.15-1")
	libssl.InFlightJob = inFlight
	kb2 := kb("KB5002", false)
	kb2.Attempts = []protocol.Attempt{{At: t0.Add(20 * time.Minute), Result: protocol.ResultFailed, Error: "0x80070005", Job: failed.ID, Ring: "canary"}}
	return []*protocol.Endpoint{
		{
			ID: "ep-deb", Client: "acme", Hostname: "ep-deb.local", OS: protocol.OS{Family: "linux", Version: "debian 12"},
			Labels: map[string]string{"role": "server", "site": "dc1"}, LastSeen: t0.Add(2 * time.Minute), RebootPending: true,
			Updates: vendorDated([]*protocol.Update{libssl, openssl}),
		},
		{
			ID: "ep-glx", Client: "globex", Hostname: "ep-glx.local", OS: protocol.OS{Family: "windows", Version: "11 24H2"},
			Labels: map[string]string{"site": "hq"}, LastSeen: t0.Add(3 * time.Minute),
			Updates: vendorDated([]*protocol.Update{kb("KB5001", false)}),
		},
		{ID: "ep-new", Client: "acme", Hostname: "ep-new.local", Updates: []*protocol.Update{}},
		{
			ID: "ep-win", Client: "acme", Hostname: "ep-win.local", OS: protocol.OS{Family: "windows", Version: "11 24H2"},
			Labels: map[string]string{"site": "hq"}, LastSeen: t0.Add(time.Minute),
			Updates: vendorDated([]*protocol.Update{kb("KB5001", true), kb2}),
		},
	}
}

func testSnapshot(t *testing.T, s *suite) {
	db := s.open(t)
	failed, open := fleet(t, db)
	ctx := context.Background()
	during, after := t0.Add(time.Hour), t0.Add(3*time.Hour)

	all := wantFleet(failed, open, during)
	for _, tc := range []struct {
		name string
		get  func() (*protocol.Snapshot, error)
		want *protocol.Snapshot
	}{
		{
			name: "whole fleet while a job is open",
			get:  func() (*protocol.Snapshot, error) { return db.Snapshot(ctx, during) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: during, Endpoints: all},
		},
		{
			name: "whole fleet after the open job's window closed",
			get:  func() (*protocol.Snapshot, error) { return db.Snapshot(ctx, after) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: after, Endpoints: wantFleet(failed, open, after)},
		},
		{
			name: "one client",
			get:  func() (*protocol.Snapshot, error) { return db.ClientSnapshot(ctx, "acme", during) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: during, Endpoints: []*protocol.Endpoint{all[0], all[2], all[3]}},
		},
		{
			name: "client without endpoints",
			get:  func() (*protocol.Snapshot, error) { return db.ClientSnapshot(ctx, "initech", during) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: during, Endpoints: []*protocol.Endpoint{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
		})
	}

	for _, want := range all {
		t.Run("endpoint "+want.ID, func(t *testing.T) {
			got, err := db.EndpointSnapshot(ctx, want.ID, during)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("endpoint snapshot (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := db.EndpointSnapshot(ctx, "ep-unknown", during); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("snapshot of unknown endpoint: %v, want ErrNotFound", err)
	}
}

// testSnapshotSortsByBytes: endpoints and updates come sorted as Go sorts
// strings (byte by byte), whatever a database's locale would say about
// case, punctuation and accents; attempts find their update among them.
func testSnapshotSortsByBytes(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	ids := []string{"ep-b", "EP-A", "ep_a", "ep-a", "ep.a", "épa", "ep-A", "epa"}
	for _, id := range ids {
		enroll(t, db, id, "acme")
	}
	updates := []string{"kb-1", "KB1", "KB-1", "kb_1", "KB_1", "kb1", "ä-1", "a-2", "A-10"}
	var us []*protocol.Update
	for _, id := range updates {
		us = append(us, kb(id, false))
	}
	replace(t, db, report("ep-a", t0, us...))
	// A failed attempt on every update: each must land on its own update.
	for _, id := range updates {
		j := createJobs(t, db, "acme", t0, newJob("ep-a", "acme", "k-"+id, id))[0]
		if _, err := db.RecordResult(ctx, j.ID, "ep-a", []store.UpdateResult{{Update: id, Result: protocol.ResultFailed, Error: "for " + id}}, t0); err != nil {
			t.Fatal(err)
		}
	}

	snap, err := db.ClientSnapshot(ctx, "acme", t0)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, e := range snap.Endpoints {
		gotIDs = append(gotIDs, e.ID)
	}
	if diff := cmp.Diff(sorted(ids), gotIDs); diff != "" {
		t.Errorf("endpoints in byte order (-want +got):\n%s", diff)
	}
	ep, err := db.EndpointSnapshot(ctx, "ep-a", t0)
	if err != nil {
		t.Fatal(err)
	}
	var gotUpdates []string
	for _, u := range ep.Updates {
		gotUpdates = append(gotUpdates, u.ID)
		if len(u.Attempts) != 1 || u.Attempts[0].Error != "for "+u.ID {
			t.Errorf("update %s: attempts %+v, want its own one", u.ID, u.Attempts)
		}
	}
	if diff := cmp.Diff(sorted(updates), gotUpdates); diff != "" {
		t.Errorf("updates in byte order (-want +got):\n%s", diff)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// testRoundTrip: what a store is given comes back as it was: signed
// payloads and signatures byte for byte (every byte value), node key
// hashes, audit details as written (spacing and key order kept), times to
// the nanosecond, text in any script.
func testRoundTrip(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	at := time.Date(2026, 3, 10, 9, 0, 0, 123456789, time.UTC)
	e := store.Enrollment{ID: "ep-1", Client: "acme", Hostname: "Rezeption – Büro 2 (東京)", NodeKeyHash: slices.Clone(allBytes), EnrolledAt: at}
	if err := db.Enroll(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := db.EndpointByID(ctx, "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("enrollment (-want +got):\n%s", diff)
	}

	u := kb("KB5001", false)
	u.Title = "Mise à jour cumulative — 2026-03 « sécurité »"
	u.Released = at.Add(-time.Nanosecond)
	u.CVSS = 7.25
	r := report("ep-1", at, u)
	r.Labels = map[string]string{"site": "Zürich", "ring": "canary", "owner": "o'brien \"ops\""}
	replace(t, db, r)

	j := newJob("ep-1", "acme", "k1", "KB5001")
	j.NotAfter = at.Add(time.Hour)
	jobs := number(t, db, "acme", []store.Job{j})
	jobs[0].Payload = slices.Concat(allBytes, []byte("{\"job\":1}\n"), allBytes)
	jobs[0].Signature = slices.Clone(allBytes[:64])
	created, err := db.CreateJobs(ctx, "acme", jobs, at)
	if err != nil {
		t.Fatal(err)
	}
	due, err := db.DueJobs(ctx, "ep-1", at)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 {
		t.Fatalf("due jobs: %d, want 1", len(due))
	}
	if !bytes.Equal(due[0].Payload, jobs[0].Payload) || !bytes.Equal(due[0].Signature, jobs[0].Signature) {
		t.Errorf("payload or signature changed in the store:\npayload   %x\nwant      %x\nsignature %x\nwant      %x",
			due[0].Payload, jobs[0].Payload, due[0].Signature, jobs[0].Signature)
	}
	if diff := cmp.Diff(created, due); diff != "" {
		t.Errorf("due job against the created one (-created +due):\n%s", diff)
	}

	detail := json.RawMessage(`{ "ring" : "pilot",  "update":"KB1", "a": [1, 2.50, "ü"] }`)
	if err := db.AppendAudit(ctx, protocol.AuditEntry{At: at, Kind: protocol.AuditHalt, Client: "acme", Detail: detail}); err != nil {
		t.Fatal(err)
	}
	entries := auditOf(t, db)
	last := entries[len(entries)-1]
	if string(last.Detail) != string(detail) || !last.At.Equal(at) {
		t.Errorf("audit entry came back with detail %s at %s, want %s at %s", last.Detail, last.At, detail, at)
	}

	snap, err := db.EndpointSnapshot(ctx, "ep-1", at)
	if err != nil {
		t.Fatal(err)
	}
	want := vendorDated([]*protocol.Update{u})
	want[0].InFlightJob = &created[0].ID
	if diff := cmp.Diff(want, snap.Updates); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(r.Labels, snap.Labels); diff != "" || !snap.LastSeen.Equal(at) || snap.Hostname != r.Hostname {
		t.Errorf("endpoint came back as %+v, labels (-want +got):\n%s", snap, diff)
	}
}
