package e2e

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestKillPatchdDuringRollout kills patchd with SIGKILL at random moments
// of a rollout to simulated agents and starts it again on the same data
// directory each time. Afterwards every update is installed exactly once
// per endpoint, every result an agent holds is stored exactly once, no
// broad job predates the canary's pass, and after one more kill every
// acknowledged result is still there.
func TestKillPatchdDuringRollout(t *testing.T) {
	agents, kills, within := 30, 4, 90*time.Second
	if *long {
		agents, kills, within = 500, 20, 10*time.Minute
	}
	rng := rand.New(rand.NewPCG(seed(t), 1))
	repo := newFleetRepo(t, "7d", approveNothing)
	// A short lease: a job leased in an answer that the kill cut off is
	// offered again soon instead of in ten minutes.
	p := startPatchd(t, repo, t.TempDir(), "--lease", "3s")
	fleet := startSimAgents(t, p.base(), agents, 3, agentOptions{})
	waitEnrolled(t, p.base(), fleet, within)
	rev := repo.approve(approveSecurity)

	for i := range kills {
		time.Sleep(time.Duration(50+rng.IntN(700)) * time.Millisecond)
		p.kill()
		down := time.Duration(rng.IntN(400)) * time.Millisecond
		t.Logf("kill %d: patchd down for %v", i+1, down)
		time.Sleep(down)
		p.start()
	}
	waitConverged(t, p.base(), rev, fleet, within)

	// Store durability: what agents hold as acknowledged survives a kill.
	p.kill()
	p.start()
	for _, a := range fleet {
		a.stop(t)
	}
	checkRollout(t, snapshot(t, p.base()), audit(t, p.base()), fleet)
}
