package reconciler

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

// TestSignJobsCarriesThePolicy checks that a signed job carries what the
// planner put in it beyond its updates (the reboot policy in full, with
// the old reboot fields for older agents, the scripts, the guards, the
// action and the emergency), covered by the signature.
func TestSignJobsCarriesThePolicy(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pj := plan.Job{
		Endpoint: "ws1", Client: "acme", Ring: "pilot", Updates: []string{"KB1"},
		NotAfter: time.Date(2026, 11, 13, 2, 0, 0, 0, time.UTC), Reboot: "prompt", RebootDeadline: "24h0m0s",
		RebootPolicy: &protocol.RebootPolicy{Mode: "prompt", Deadline: "24h0m0s", Deferrals: 3, DeferFor: "4h0m0s",
			Warnings: []string{"1h0m0s"}, QuietHours: &protocol.QuietHours{Start: "22:00", End: "07:00"}, Timezone: "America/New_York"},
		Hooks: &protocol.JobHooks{Pre: &protocol.Script{Path: "scripts/stop-ehr.ps1", Shell: "powershell", Content: "Stop-Service EHR\n",
			SHA256: "b1d567939a3de31988986557af998f4db3889d2d2b95e658d1ebc29da4beee38"}, Timeout: "10m0s"},
		Guards:    &protocol.JobGuards{Processes: []string{"ehr.exe"}, Wait: "30m0s"},
		Emergency: "KB1: CVE-2026-1234 (clients/acme/policy.cue:60)",
		Revision:  "c0ffee", IdempotencyKey: "k1",
	}
	snap := &protocol.Snapshot{Endpoints: []*protocol.Endpoint{{ID: "ws1", Client: "acme",
		Updates: []*protocol.Update{{ID: "KB1", Source: "windows-update", Name: "KB1", Version: "1"}}}}}
	jobs, err := signJobs(key, []plan.Job{pj}, snap, map[string]int64{"ws1": 4})
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.OpenJob(pub, protocol.SignedJob{Payload: jobs[0].Payload, Signature: jobs[0].Signature})
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.JobPayload{
		ID: jobs[0].ID, Endpoint: "ws1", Seq: 5, Updates: []protocol.JobUpdate{{ID: "KB1", Source: "windows-update", Name: "KB1", Version: "1"}},
		NotAfter: pj.NotAfter, Reboot: "prompt", RebootDeadline: "24h0m0s", Revision: "c0ffee", IdempotencyKey: "k1",
		RebootPolicy: pj.RebootPolicy, Hooks: pj.Hooks, Guards: pj.Guards, Emergency: pj.Emergency,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("signed payload (-want +got):\n%s", diff)
	}
}
