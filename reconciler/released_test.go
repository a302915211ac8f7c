package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// aptAfterAWeek approves apt security updates seven days after their
// release, with the default SLA (important: 30 days).
var aptAfterAWeek = map[string][]byte{
	"cue.mod/module.cue": nightWindow["cue.mod/module.cue"],
	"fleet.cue": []byte(`package fleet

defaults: rings: [{name: "all", select: {}, window: "always", soak: "0m"}]
windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}
`),
	"clients/acme/client.cue": []byte(`package fleet

client: {id: "acme", name: "Acme Dental", timezone: "UTC"}
baseline: approve: [{name: "apt-security-after-a-week", source: ["apt"], category: ["security"], minAge: "7d"}]
`),
}

// TestUndatedUpdateCountsFromFirstSeen: an apt update whose source gives no
// release time is released when the fleet first saw it: a minAge of 7d
// approves it seven days later, not at once (as if released in year 1),
// and it breaches the 30-day SLA 30 days after it was first seen.
func TestUndatedUpdateCountsFromFirstSeen(t *testing.T) {
	e := newReplanEnvWith(t, aptAfterAWeek, nil)
	ctx := context.Background()
	firstSeen := e.clock.Now()
	if err := e.db.Enroll(ctx, store.Enrollment{ID: "acme-srv-1", Client: "acme", Hostname: "srv1", NodeKeyHash: []byte("h"), EnrolledAt: firstSeen}); err != nil {
		t.Fatal(err)
	}
	// report sends the agent's report, the update still missing, so the
	// endpoint never turns stale.
	report := func() {
		t.Helper()
		now := e.clock.Now()
		err := e.db.ReplaceInventory(ctx, store.Report{Endpoint: "acme-srv-1", Hostname: "srv1", OS: protocol.OS{Family: "linux"}, At: now, Seq: now.UnixNano(),
			Updates: []*protocol.Update{{ID: "openssl@3.0.15-1~deb12u1", Source: "apt", Name: "openssl", Version: "3.0.15-1~deb12u1",
				InstalledVersion: "3.0.14-1~deb12u2", Category: "security", Severity: "important"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	decision := func() plan.PairDecision {
		t.Helper()
		if err := e.r.reconcile(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		snap, err := e.db.ClientSnapshot(ctx, "acme", e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		u := snap.Endpoints[0].Updates[0]
		if !u.Released.Equal(firstSeen) || u.ReleasedFrom != protocol.ReleasedFirstSeen {
			t.Fatalf("stored release time %v (%s), want the first sighting %v", u.Released, u.ReleasedFrom, firstSeen)
		}
		pol, _ := e.r.policy.Policy("acme")
		x, err := plan.Explain(fleetOf(pol), snap, e.clock.Now(), "acme-srv-1", u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return x.Decision
	}

	report()
	if d := decision(); d.Decision != plan.NotApproved || d.EligibleAt == nil || !d.EligibleAt.Equal(firstSeen.Add(7*24*time.Hour)) {
		t.Fatalf("when first seen: %s eligible at %v (%s); want not-approved until 7 days later", d.Decision, d.EligibleAt, d.Reason)
	}
	e.clock.Advance(7*24*time.Hour - time.Minute)
	report()
	if d := decision(); d.Decision != plan.NotApproved {
		t.Fatalf("a minute before 7 days: %s, want not-approved", d.Decision)
	}
	e.clock.Advance(2 * time.Minute)
	report()
	if d := decision(); !d.Decision.Drift() {
		t.Fatalf("7 days after first seen: %s (%s), want it desired and missing", d.Decision, d.Reason)
	}
	if n := slaBreaches(t, e); n != 0 {
		t.Fatalf("%v SLA breaches 7 days after first seen, want none", n)
	}
	e.clock.Advance(23*24*time.Hour - 2*time.Minute) // 29 days and 23 hours after first seen
	report()
	decision()
	if n := slaBreaches(t, e); n != 0 {
		t.Fatalf("%v SLA breaches before 30 days, want none", n)
	}
	e.clock.Advance(2 * time.Hour)
	report()
	decision()
	if n := slaBreaches(t, e); n != 1 {
		t.Fatalf("%v SLA breaches 30 days after first seen with the update still missing, want 1", n)
	}
}

// slaBreaches is acme's patchline_sla_breaches, summed over severities.
func slaBreaches(t *testing.T, e *replanEnv) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "patchline_sla_breaches" {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

// fleetOf is a fleet of the one client pol.
func fleetOf(pol appliedClient) *schema.Fleet {
	return &schema.Fleet{Revision: pol.revision, Clients: map[string]*schema.Client{pol.client.ID: pol.client}}
}
