package plan_test

import (
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// now is a Thursday, noon UTC.
var now = time.Date(2026, 11, 12, 12, 0, 0, 0, time.UTC)

func pos(line int) schema.Pos { return schema.Pos{File: "clients/acme/policy.cue", Line: line, Col: 2} }

func rule(line int) string { return pos(line).Rule() }

var every = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// testFleet is client acme in UTC: rings canary (label ring=canary, soak
// 24h, minSuccess 50%, maxFailures 25%), pilot (label ring=pilot, soak 48h,
// minSuccess 80%, maxFailures 10%) and broad (everyone else, nightly
// window 22:00-02:00); a baseline approving critical Windows updates at
// once (line 30) and important ones after 7 days (line 31), requiring KB100
// (line 40) and openssl >= 3.0.15 (line 41).
func testFleet() *schema.Fleet {
	return &schema.Fleet{Revision: "c0ffee", Clients: map[string]*schema.Client{"acme": {
		ID: "acme", Name: "Acme", Timezone: "UTC", Location: time.UTC, Dir: "clients/acme", Mode: schema.ModeEnforce,
		Windows: map[string]schema.Window{
			"always":  {Name: "always", Days: every, Duration: 24 * time.Hour, Pos: pos(5)},
			"nightly": {Name: "nightly", Days: every, Start: 22 * 60, Duration: 4 * time.Hour, Pos: pos(6)},
		},
		Rings: []schema.Ring{
			{Name: "canary", Select: schema.Selector{Labels: map[string]string{"ring": "canary"}}, Window: "always",
				Soak: 24 * time.Hour, MinSuccess: 0.5, MaxFailures: 0.25, Reboot: schema.RebootIfRequired, Pos: pos(10)},
			{Name: "pilot", Select: schema.Selector{Labels: map[string]string{"ring": "pilot"}}, Window: "always",
				Soak: 48 * time.Hour, MinSuccess: 0.8, MaxFailures: 0.1, Reboot: schema.RebootIfRequired, Pos: pos(15)},
			{Name: "broad", Window: "nightly", MinSuccess: 0.95, MaxFailures: 0.05,
				Reboot: schema.RebootForce, RebootDeadline: 4 * time.Hour, Pos: pos(20)},
		},
		Baseline: schema.Baseline{
			Approve: []schema.ApproveRule{
				{Name: "critical-now", Source: []string{"windows-update"}, MinSeverity: "critical", Pos: pos(30)},
				{Name: "important-after-a-week", MinSeverity: "important", MinAge: 7 * 24 * time.Hour, Pos: pos(31)},
			},
			Require: []schema.Requirement{
				{ID: "KB100", Pos: pos(40)},
				{Source: "apt", Match: "openssl", MinVersion: "3.0.15", Pos: pos(41)},
			},
		},
		StaleAfter: 7 * 24 * time.Hour,
	}}}
}

func acme(f *schema.Fleet) *schema.Client { return f.Clients["acme"] }

// ep is an endpoint of acme, seen an hour ago, in the ring named by its
// "ring" label ("" for none).
func ep(id, ring string, ups ...*protocol.Update) *protocol.Endpoint {
	e := &protocol.Endpoint{ID: id, Client: "acme", Hostname: id, OS: protocol.OS{Family: "windows"},
		Labels: map[string]string{}, LastSeen: now.Add(-time.Hour), Updates: ups}
	if ring != "" {
		e.Labels["ring"] = ring
	}
	return e
}

// kb is a Windows update released ten days ago.
func kb(id, severity string, opts ...func(*protocol.Update)) *protocol.Update {
	u := &protocol.Update{ID: id, Source: "windows-update", Name: id, Version: "10.0.1", Category: "security",
		Severity: severity, Released: now.Add(-10 * 24 * time.Hour)}
	for _, o := range opts {
		o(u)
	}
	return u
}

// pkg is an apt package update released ten days ago.
func pkg(name, version string, opts ...func(*protocol.Update)) *protocol.Update {
	u := &protocol.Update{ID: name + "@" + version, Source: "apt", Name: name, Version: version, Category: "security",
		Severity: "moderate", Released: now.Add(-10 * 24 * time.Hour)}
	for _, o := range opts {
		o(u)
	}
	return u
}

func installedAt(t time.Time) func(*protocol.Update) {
	return func(u *protocol.Update) { u.Installed, u.InstalledAt = true, &t }
}

func installed(u *protocol.Update) { u.Installed = true }

func released(t time.Time) func(*protocol.Update) { return func(u *protocol.Update) { u.Released = t } }

func failedAt(ts ...time.Time) func(*protocol.Update) {
	return func(u *protocol.Update) {
		for _, t := range ts {
			u.Attempts = append(u.Attempts, protocol.Attempt{At: t, Result: protocol.ResultFailed, Error: "0x800f0922"})
		}
	}
}

func attempt(t time.Time, r protocol.Result) func(*protocol.Update) {
	return func(u *protocol.Update) { u.Attempts = append(u.Attempts, protocol.Attempt{At: t, Result: r}) }
}

func inFlight(job string) func(*protocol.Update) {
	return func(u *protocol.Update) { u.InFlightJob = &job }
}

func requires(ids ...string) func(*protocol.Update) {
	return func(u *protocol.Update) { u.Requires = ids }
}

func snapshot(eps ...*protocol.Endpoint) *protocol.Snapshot {
	return &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: now, Endpoints: eps}
}

func hours(n int) time.Duration { return time.Duration(n) * time.Hour }
