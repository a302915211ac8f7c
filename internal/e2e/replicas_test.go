package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/internal/signingkey"
)

// threeRingsCUE is the test fleet with a pilot ring between canary and
// broad.
const threeRingsCUE = `package fleet

defaults: {
	staleAfter: "7d"
	// Simulated endpoints each report their own made-up updates, so a
	// canary may have none of a pilot's: minEndpoints 0 lets it pass empty.
	rings: [
		{name: "canary", select: labels: ring: "canary", window: "always", soak: "0m", minSuccess: 1.0, maxFailures: 0.0, minEndpoints: 0},
		{name: "pilot", select: labels: ring: "pilot", window: "always", soak: "0m", minSuccess: 0.9, maxFailures: 0.1, minEndpoints: 0},
		{name: "broad", select: {}, window: "always", soak: "0m", minSuccess: 0.5, maxFailures: 0.3},
	]
	baseline: approve: %s
}

windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}
`

// replica is one patchd of the test's replicas, with its name and the
// address of its metrics.
type replica struct {
	*patchdProc
	name    string
	metrics string
}

// leaderOf polls the replicas' status until one that runs names itself
// the leader, other than not (nil for none), and returns it.
func leaderOf(t *testing.T, replicas []*replica, not *replica, within time.Duration) *replica {
	t.Helper()
	var found *replica
	waitFor(t, "a replica to lead", within, func() (bool, string) {
		var seen []string
		for _, r := range replicas {
			if r.cmd == nil || r == not {
				continue
			}
			var st struct{ Replica, Leader string }
			if code, err := get(r.base(), "/v1/status", patchdtest.AdminToken, &st); code != http.StatusOK {
				seen = append(seen, fmt.Sprintf("%s: %d %v", r.name, code, err))
				continue
			}
			seen = append(seen, r.name+" says "+st.Leader)
			if st.Leader == r.name {
				found = r
				return true, ""
			}
		}
		return false, strings.Join(seen, "; ")
	})
	return found
}

// lease reads the leader lease's holder and token from the database.
func lease(t *testing.T, conn *pgx.Conn) (string, int64) {
	t.Helper()
	var holder string
	var token int64
	if err := conn.QueryRow(context.Background(), `SELECT holder, token FROM leader`).Scan(&holder, &token); err != nil {
		t.Fatal(err)
	}
	return holder, token
}

// jobsUnder counts the jobs created under fencing token token.
func jobsUnder(t *testing.T, conn *pgx.Conn, token int64) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE fence = $1`, token).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// metric returns the text of /metrics at addr.
func metric(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReplicasFailover runs three patchd replicas on one PostgreSQL
// database with 200 simulated agents spread over them and a three-ring
// rollout. The leader is killed with SIGKILL twice during the rollout,
// and a third leader is paused (SIGSTOP) until another took over, then
// let go (SIGCONT). Afterwards every update is installed exactly once per
// endpoint and every result is recorded once, the rollout completed in
// ring order, the paused leader wrote no job after the takeover (its
// fencing token stopped it) and follows.
func TestReplicasFailover(t *testing.T) {
	agents, within := 200, 3*time.Minute
	dsn := pgtest.DB(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	if err := signingkey.WriteNew(keyFile, key); err != nil {
		t.Fatal(err)
	}

	repo := newFleetRepo(t, "7d", approveNothing)
	repo.write(map[string]string{"fleet.cue": fmt.Sprintf(threeRingsCUE, approveNothing)})
	repo.commit("Three rings")

	var replicas []*replica
	for i := range 3 {
		name := fmt.Sprintf("pd-%d", i)
		metricsAddr := freeAddr(t)
		p := startPatchd(t, repo, t.TempDir(), "--database", dsn, "--signing-key", keyFile, "--replica-name", name,
			"--metrics-listen", metricsAddr, "--lease", "3s")
		p.name = "patchd " + name
		replicas = append(replicas, &replica{patchdProc: p, name: name, metrics: metricsAddr})
	}
	lead := leaderOf(t, replicas, nil, 30*time.Second)
	t.Logf("%s leads", lead.name)

	// Each agent lists the replicas from a different one, so the agents
	// spread over them.
	fleet := make([]*simAgent, agents)
	for i := range fleet {
		ring := "broad"
		switch {
		case i < 10:
			ring = "canary"
		case i < 50:
			ring = "pilot"
		}
		var urls []string
		for j := range replicas {
			urls = append(urls, replicas[(i+j)%len(replicas)].base())
		}
		fleet[i] = startAgent(t, strings.Join(urls, ","), fmt.Sprintf("acme-%s-%04d", ring, i), ring, agentOptions{})
	}
	waitEnrolled(t, lead.base(), fleet, within)

	repo.write(map[string]string{"fleet.cue": fmt.Sprintf(threeRingsCUE, approveSecurity)})
	rev := repo.commit("Approve security updates")

	// Kill the leader twice during the rollout; each time another takes
	// over, and the killed one comes back as a follower.
	for i := range 2 {
		time.Sleep(time.Duration(500+700*i) * time.Millisecond)
		killed := lead
		killed.kill()
		down := time.Now()
		lead = leaderOf(t, replicas, killed, 30*time.Second)
		t.Logf("kill %d: %s killed; %s leads after %v", i+1, killed.name, lead.name, time.Since(down).Round(100*time.Millisecond))
		killed.start()
	}

	// Pause the leader until another takes over, then let it go on.
	time.Sleep(time.Second)
	paused := lead
	_, staleToken := lease(t, conn)
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var next *replica
	waitFor(t, "another replica to take the lease over", 30*time.Second, func() (bool, string) {
		holder, token := lease(t, conn)
		for _, r := range replicas {
			if r.name == holder && r != paused && token > staleToken {
				next = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s holds token %d", holder, token)
	})
	t.Logf("%s paused; %s took over after %v", paused.name, next.name, time.Since(stopped).Round(100*time.Millisecond))
	before := jobsUnder(t, conn, staleToken)
	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the paused replica to follow", 30*time.Second, func() (bool, string) {
		m := metric(t, paused.metrics)
		return strings.Contains(m, fmt.Sprintf("patchline_leader{replica=%q} 0", paused.name)), ""
	})
	lead = leaderOf(t, replicas, nil, 30*time.Second)
	waitConverged(t, lead.base(), rev, fleet, within)
	if after := jobsUnder(t, conn, staleToken); after != before {
		t.Errorf("the paused former leader wrote %d jobs under its stale fencing token after %s took over", after-before, next.name)
	}
	if b, _ := os.ReadFile(paused.log); !strings.Contains(string(b), "lost the leader lease") {
		t.Errorf("the paused former leader did not log losing the lease:\n%s", tail(string(b), 2000))
	}
	if m := metric(t, lead.metrics); !strings.Contains(m, fmt.Sprintf("patchline_leader{replica=%q} 1", lead.name)) {
		t.Errorf("the leader's metrics do not say it leads")
	}
	t.Logf("fenced writes of the paused replica: %s", grepLine(metric(t, paused.metrics), "patchline_fenced_writes_total "))

	for _, a := range fleet {
		a.stop(t)
	}
	checkRollout(t, snapshot(t, lead.base()), audit(t, lead.base()), fleet)
}

// grepLine returns the first line of s that starts with prefix.
func grepLine(s, prefix string) string {
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
