package agent

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/agent/selfupdate"
	"github.com/patchline/patchline/protocol"
)

// TestAgentUpdateRefusedKeepsRunning: a job's agent update goes to the
// updater, not the backend; when the agent cannot take it, the job's
// other updates are installed, the agent update fails with the reason and
// the agent runs on.
func TestAgentUpdateRefusedKeepsRunning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		updater func(t *testing.T, dir string) *selfupdate.Updater
		want    string
	}{
		{name: "no release key pinned", updater: func(*testing.T, string) *selfupdate.Updater { return nil }, want: "pins no release key"},
		{
			name: "a development build",
			updater: func(t *testing.T, dir string) *selfupdate.Updater {
				pub, _, _ := ed25519.GenerateKey(nil)
				u, err := selfupdate.New(selfupdate.Config{Key: pub, StateDir: dir, Executable: filepath.Join(dir, "patch-agent"), Running: "devel"})
				if err != nil {
					t.Fatal(err)
				}
				return u
			},
			want: "a development build does not update itself",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			a := h.agent(t)
			a.cfg.SelfUpdate = tc.updater(t, h.dir)
			p := job("ep-1", "job-1", 1, "openssl@3.0.15-1")
			p.Updates = append(p.Updates, protocol.JobUpdate{ID: protocol.AgentUpdateID("1.4.2"), Source: protocol.SourcePatchline,
				Name: protocol.AgentUpdateName, Version: "1.4.2"})
			h.fc.jobs <- h.fc.sign(p)
			runAgent(t, a, h.fc, func() bool {
				_, reports, _, results := h.fc.snapshot()
				_, done := results["job-1"]
				return done && len(reports) >= 2
			})
			_, _, _, results := h.fc.snapshot()
			got := results["job-1"].Updates
			if len(got) != 2 || got[0].Result != protocol.ResultSucceeded || got[1].Update != protocol.AgentUpdateID("1.4.2") ||
				got[1].Result != protocol.ResultFailed || !strings.Contains(got[1].Error, tc.want) {
				t.Fatalf("results %+v, want openssl succeeded and the agent update failed with %q", got, tc.want)
			}
			if n := h.be.installCount(protocol.AgentUpdateID("1.4.2")); n != 0 {
				t.Errorf("the backend was asked to install the agent update %d times", n)
			}
		})
	}
}

// TestUpdatedAgentReportsTheJob: after the swap and the restart, the job
// of the agent update gets its result from the binary that runs: the new
// one once its first report is accepted (succeeded), or the old one after
// a rollback (failed, with the reason); never "unknown" as an interrupted
// job.
func TestUpdatedAgentReportsTheJob(t *testing.T) {
	id := protocol.AgentUpdateID("1.4.2")
	for _, tc := range []struct {
		name       string
		running    string
		rolledBack string
		want       protocol.UpdateResult
		wantState  selfupdate.State
	}{
		{
			name: "the new binary confirms", running: "1.4.2",
			want: protocol.UpdateResult{Update: id, Result: protocol.ResultSucceeded},
		},
		{
			name: "the old binary after a rollback", running: "1.4.1", rolledBack: "update to 1.4.2 rolled back: no check-in within 10m",
			want:      protocol.UpdateResult{Update: id, Result: protocol.ResultFailed, Error: "update to 1.4.2 rolled back: no check-in within 10m"},
			wantState: selfupdate.State{RolledBack: []string{"1.4.2"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			old := h.enrolled(t)
			// What the old binary left: the job started in the journal,
			// and the update pending.
			p := job("ep-1", "job-1", 1)
			p.Updates = []protocol.JobUpdate{{ID: id, Source: protocol.SourcePatchline, Name: protocol.AgentUpdateName, Version: "1.4.2"}}
			if err := old.storeSeq(1); err != nil {
				t.Fatal(err)
			}
			if err := old.journal.start(&entry{Job: p.ID, Key: p.IdempotencyKey, Seq: 1, Updates: p.Updates, StartedAt: t0}); err != nil {
				t.Fatal(err)
			}
			pending := selfupdate.State{Pending: &selfupdate.Pending{Version: "1.4.2", From: "1.4.1", SwappedAt: t0, RolledBack: tc.rolledBack,
				Job: []byte(`{"idempotencyKey":"` + p.IdempotencyKey + `","update":"` + id + `"}`)}}
			b, _ := json.Marshal(pending)
			if err := os.WriteFile(filepath.Join(h.dir, "selfupdate.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			pub, _, _ := ed25519.GenerateKey(nil)
			su, err := selfupdate.New(selfupdate.Config{Key: pub, StateDir: h.dir, Executable: filepath.Join(h.dir, "patch-agent"),
				Running: tc.running, Now: h.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			a := h.agent(t)
			a.cfg.SelfUpdate = su
			runAgent(t, a, h.fc, func() bool {
				_, _, _, results := h.fc.snapshot()
				_, done := results["job-1"]
				return done
			})
			_, _, _, results := h.fc.snapshot()
			got := results["job-1"].Updates
			if len(got) != 1 || got[0].Update != tc.want.Update || got[0].Result != tc.want.Result || got[0].Error != tc.want.Error {
				t.Fatalf("results %+v, want %+v", got, tc.want)
			}
			st, err := su.Load()
			if err != nil {
				t.Fatal(err)
			}
			if st.Pending != nil || len(st.RolledBack) != len(tc.wantState.RolledBack) {
				t.Errorf("state in the end %+v, want %+v", st, tc.wantState)
			}
		})
	}
}
