package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// testAgentVersion: the version an endpoint's agent reports is in the
// snapshot, and an agent update (never reported) appears among the
// endpoint's updates, in id order, once a job names it: in flight while
// the job is open, with its attempts once results come, installed when
// the agent reports its version.
func testAgentVersion(t *testing.T, s *suite) {
	ctx := context.Background()
	db := s.open(t)
	enroll(t, db, "ep-1", "acme")
	r := report("ep-1", t0, kb("KB1", false), kb("zz-last", false))
	r.AgentVersion = "1.0.0"
	replace(t, db, r)
	ep, err := db.EndpointSnapshot(ctx, "ep-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if ep.AgentVersion != "1.0.0" || len(ep.Updates) != 2 {
		t.Fatalf("after the report: agent version %q and %d updates, want 1.0.0 and 2", ep.AgentVersion, len(ep.Updates))
	}

	id := protocol.AgentUpdateID("1.1.0")
	jobs := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", id))
	ids := func(ep *protocol.Endpoint) []string {
		var out []string
		for _, u := range ep.Updates {
			out = append(out, u.ID)
		}
		return out
	}
	ep, err = db.EndpointSnapshot(ctx, "ep-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"KB1", id, "zz-last"}, ids(ep)); diff != "" {
		t.Fatalf("updates with the agent update's job open (-want +got):\n%s", diff)
	}
	au := ep.Updates[1]
	if au.Source != protocol.SourcePatchline || au.Version != "1.1.0" || au.Installed || au.InFlightJob == nil || *au.InFlightJob != jobs[0].ID {
		t.Fatalf("agent update while its job is open: %+v", au)
	}

	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-1", []store.UpdateResult{{Update: id, Result: protocol.ResultSucceeded}}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r = numbered(report("ep-1", t0.Add(2*time.Minute), kb("KB1", false), kb("zz-last", false)), 2)
	r.AgentVersion = "1.1.0"
	replace(t, db, r)
	snap, err := db.ClientSnapshot(ctx, "acme", t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ep = snap.Endpoints[0]
	au = ep.Updates[1]
	if ep.AgentVersion != "1.1.0" || au.ID != id || !au.Installed || au.InFlightJob != nil || len(au.Attempts) != 1 || au.Attempts[0].Result != protocol.ResultSucceeded {
		t.Fatalf("after the result and a report of 1.1.0: agent version %q, agent update %+v", ep.AgentVersion, au)
	}
	if err := snap.Validate(); err != nil {
		t.Fatalf("a snapshot with an agent update does not validate: %v", err)
	}
}
