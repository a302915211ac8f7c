// Package plangen generates large, deterministic fleets and state snapshots
// for benchmarks of the planner, the CLI and the controller. The same
// arguments always give the same values.
package plangen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// ClientID is the id of the i-th generated client.
func ClientID(i int) string { return fmt.Sprintf("client-%03d", i) }

// Fleet returns a fleet of n clients, all in UTC, each with three rings
// (canary and pilot selected by the "ring" label, broad for the rest), a
// window that is always open, a nightly window, a baseline approving
// important Windows updates at once and winget apps after a week, a
// requirement on openssl, one exclusion and one resume entry.
func Fleet(n int) *schema.Fleet {
	f := &schema.Fleet{Revision: "0123456789abcdef0123456789abcdef01234567", Clients: map[string]*schema.Client{}}
	for i := range n {
		id := ClientID(i)
		dir := "clients/" + id
		pos := func(line int) schema.Pos { return schema.Pos{File: dir + "/policy.cue", Line: line, Col: 3} }
		every := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
		f.Clients[id] = &schema.Client{
			ID: id, Name: "Client " + id, Timezone: "UTC", Location: time.UTC, Dir: dir, Mode: schema.ModeEnforce,
			Windows: map[string]schema.Window{
				"always":  {Name: "always", Days: every, Start: 0, Duration: 24 * time.Hour, Pos: pos(3)},
				"nightly": {Name: "nightly", Days: every, Start: 22 * 60, Duration: 4 * time.Hour, Pos: pos(4)},
			},
			Rings: []schema.Ring{
				{Name: "canary", Select: schema.Selector{Labels: map[string]string{"ring": "canary"}}, Window: "always",
					Soak: 24 * time.Hour, MinSuccess: 0.9, MaxFailures: 0.2, Reboot: schema.RebootIfRequired, Pos: pos(10)},
				{Name: "pilot", Select: schema.Selector{Labels: map[string]string{"ring": "pilot"}}, Window: "always",
					Soak: 48 * time.Hour, MinSuccess: 0.8, MaxFailures: 0.1, MaxConcurrent: 25, Reboot: schema.RebootIfRequired, Pos: pos(14)},
				{Name: "broad", Window: "nightly", MinSuccess: 0.95, MaxFailures: 0.05,
					Reboot: schema.RebootForce, RebootDeadline: 4 * time.Hour, Pos: pos(18)},
			},
			Baseline: schema.Baseline{
				Approve: []schema.ApproveRule{
					{Name: "windows-important", Source: []string{"windows-update"}, MinSeverity: "important", Pos: pos(24)},
					{Name: "apps-after-a-week", Source: []string{"winget"}, MinAge: 7 * 24 * time.Hour, Pos: pos(25)},
				},
				Require: []schema.Requirement{{Source: "apt", Match: "openssl", MinVersion: "3.0.15", Pos: pos(28)}},
			},
			Exclusions: []schema.Exclusion{{Update: "KB5000007", Select: schema.Selector{Labels: map[string]string{"role": "sql"}},
				Reason: "breaks the line-of-business app", Ticket: "PSA-1234", Until: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), Pos: pos(31)}},
			Resume:     []schema.Resume{{Update: "KB5000003", After: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Pos: pos(35)}},
			StaleAfter: 7 * 24 * time.Hour,
		}
	}
	return f
}

// Snapshot returns a snapshot of endpoints spread over clients, each
// reporting the same updates updates, as seen at now. Endpoints of a client
// share Update values (one per variant: missing, installed at one of a few
// times, failed, in flight), so a snapshot of 100,000 endpoints stays small;
// callers must not change them.
func Snapshot(clients, endpoints, updates int, now time.Time) *protocol.Snapshot {
	rng := rand.New(rand.NewPCG(1, 2))
	s := &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: now, Endpoints: make([]*protocol.Endpoint, endpoints)}
	const variants = 8
	pool := make([][][variants]*protocol.Update, clients)
	for c := range clients {
		pool[c] = make([][variants]*protocol.Update, updates)
		for j := range updates {
			for v := range variants {
				pool[c][j][v] = update(j, v, now)
			}
		}
	}
	for i := range endpoints {
		c := i % clients
		ring := "broad"
		switch r := rng.IntN(100); {
		case r < 5:
			ring = "canary"
		case r < 25:
			ring = "pilot"
		}
		labels := map[string]string{"ring": ring}
		if rng.IntN(10) == 0 {
			labels["role"] = "sql"
		}
		lastSeen := now.Add(-time.Duration(rng.IntN(60)) * time.Minute)
		if rng.IntN(50) == 0 {
			lastSeen = now.Add(-10 * 24 * time.Hour)
		}
		ep := &protocol.Endpoint{
			ID: fmt.Sprintf("ep-%06d", i), Client: ClientID(c), Hostname: fmt.Sprintf("host-%06d", i),
			OS: protocol.OS{Family: "windows", Version: "10.0.22631"}, Labels: labels, LastSeen: lastSeen,
			Updates: make([]*protocol.Update, updates),
		}
		for j := range updates {
			// Mostly installed or missing; now and then failed or in flight.
			v := rng.IntN(variants)
			if v >= 6 && rng.IntN(4) != 0 {
				v = rng.IntN(6)
			}
			ep.Updates[j] = pool[c][j][v]
		}
		s.Endpoints[i] = ep
	}
	return s
}

// update builds variant v of the j-th update: 0-1 missing, 2-5 installed
// at different times, 6 missing after a failed attempt, 7 in flight.
func update(j, v int, now time.Time) *protocol.Update {
	released := now.Add(-time.Duration(j%20+1) * 24 * time.Hour)
	u := &protocol.Update{Category: "security", Severity: []string{"low", "moderate", "important", "critical"}[j%4],
		CVSS: float64(40+j%60) / 10, Released: released, RebootRequired: j%2 == 0}
	switch j % 5 {
	case 0, 1, 2:
		u.Source, u.Name = "windows-update", fmt.Sprintf("KB50%05d", j)
		u.ID, u.Version = u.Name, fmt.Sprintf("10.0.22631.%d", 4000+j)
		if j%5 == 2 && j > 0 {
			u.Requires = []string{fmt.Sprintf("KB50%05d", j-1)}
		}
	case 3:
		u.Source, u.Name, u.Version = "winget", fmt.Sprintf("Vendor.App%d", j), fmt.Sprintf("%d.0.%d", 100+j, j)
		u.ID = u.Name + "@" + u.Version
	default:
		u.Source, u.Name, u.Version = "apt", []string{"openssl", "libssl3", "curl"}[j%3], fmt.Sprintf("3.0.%d-1~deb12u1", 10+j%10)
		u.ID = u.Name + "@" + u.Version + fmt.Sprintf("+%d", j)
	}
	switch {
	case v >= 2 && v <= 5:
		at := released.Add(time.Duration(v) * 6 * time.Hour)
		u.Installed, u.InstalledAt = true, &at
	case v == 6:
		u.Attempts = []protocol.Attempt{{At: now.Add(-30 * time.Hour), Result: protocol.ResultFailed, Error: "0x80070002", Job: "job-gen", Ring: "broad"}}
	case v == 7:
		job := fmt.Sprintf("job-%d", j)
		u.InFlightJob = &job
	}
	return u
}
