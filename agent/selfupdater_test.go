package agent

import (
	"crypto/ed25519"
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
