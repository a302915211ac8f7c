package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/proctest"
	"github.com/patchline/patchline/protocol"
)

// healthyCUE is a plain client; its name changes with every commit to it.
const healthyCUE = `package fleet

client: {id: "%s", name: "%s", timezone: "UTC"}
`

// TestRunawayPolicyCannotHoldPatchdHostage: two clients' files hold
// comprehensions that would run for minutes; commits to another client
// keep applying within 30 s each, patchd's memory stays small, no
// evaluator outlives its deadline, and a restart with the runaways in the
// history starts in seconds with every healthy client applied.
func TestRunawayPolicyCannotHoldPatchdHostage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the memory of patchd and its evaluators is read from /proc")
	}
	const applyWithin, rssCeiling = 30 * time.Second, 1 << 30
	healthy := []string{"acme", "globex", "initech"}
	repo := newFleetRepo(t, "7d", approveNothing)
	repo.write(map[string]string{
		"clients/globex/policy.cue":  fmt.Sprintf(healthyCUE, "globex", "Globex"),
		"clients/initech/policy.cue": fmt.Sprintf(healthyCUE, "initech", "Initech"),
	})
	head := repo.commit("Onboard globex and initech")
	p := startPatchd(t, repo, t.TempDir())
	waitApplied(t, p, healthy, head, applyWithin)
	peaks := []*memoryPeak{watchMemory(t, p)}

	repo.write(map[string]string{
		"clients/evil/policy.cue":  proctest.RunawayPolicy("evil"),
		"clients/evil2/policy.cue": proctest.RunawayPolicy("evil2"),
	})
	repo.commit("Two runaway clients")
	for i := range 4 {
		repo.write(map[string]string{"clients/acme/policy.cue": fmt.Sprintf(healthyCUE, "acme", fmt.Sprintf("Acme Dental %d", i))})
		head = repo.commit(fmt.Sprintf("Rename acme, take %d", i))
		start := time.Now()
		waitApplied(t, p, []string{"acme"}, head, applyWithin)
		t.Logf("commit %d to acme applied in %v", i+1, time.Since(start).Round(time.Millisecond))
	}
	st := status(t, p.base())
	for _, c := range []string{"evil", "evil2"} {
		if rs := revisionOf(st, c); rs.AttemptStatus != "refused" || rs.Applied != "" {
			t.Errorf("%s: %+v, want refused and never applied", c, rs)
		}
	}
	if r := st.Refused; r == nil || !strings.Contains(strings.Join(r.Problems, "\n"), "evaluation exceeded 10s") {
		t.Errorf("last refusal %+v, want a runaway's 'evaluation exceeded 10s'", r)
	}
	if kids := children(p.cmd.Process.Pid); len(kids) > 0 {
		t.Errorf("patchd still has child processes %v with nothing to evaluate", kids)
	}

	// A restart evaluates each client at the revision it last applied:
	// the runaways never applied one, so they hold nothing back.
	p.kill()
	start := time.Now()
	p.start()
	waitApplied(t, p, healthy, head, applyWithin)
	restart := time.Since(start)
	t.Logf("restarted with the runaways in the history; every healthy client applied %v after the start", restart.Round(time.Millisecond))
	if restart > 5*time.Second {
		t.Errorf("the restart took %v to show every healthy client applied, want seconds", restart)
	}
	peaks = append(peaks, watchMemory(t, p))

	// The next commit evaluates the runaways again (the cache did not
	// survive the restart); the change to acme still lands within 30 s.
	repo.write(map[string]string{"clients/acme/policy.cue": fmt.Sprintf(healthyCUE, "acme", "Acme Dental, restarted")})
	head = repo.commit("Rename acme after the restart")
	start = time.Now()
	waitApplied(t, p, healthy, head, applyWithin)
	t.Logf("the first commit after the restart applied in %v", time.Since(start).Round(time.Millisecond))

	for i, pk := range peaks {
		patchd, tree := pk.result()
		t.Logf("run %d: patchd peak RSS %d MiB; patchd and its evaluators together peaked at %d MiB", i+1, patchd>>20, tree>>20)
		if patchd > rssCeiling {
			t.Errorf("run %d: patchd's RSS reached %d MiB, want under 1 GiB", i+1, patchd>>20)
		}
	}
}

// waitApplied waits until every one of clients has applied rev and shows
// as running it, known and not refused.
func waitApplied(t *testing.T, p *patchdProc, clients []string, rev string, within time.Duration) {
	t.Helper()
	waitFor(t, "clients "+strings.Join(clients, ", ")+" at "+protocol.ShortRevision(rev), within, func() (bool, string) {
		st := status(t, p.base())
		for _, c := range clients {
			cs := clientStatus(st, c)
			if applied(st, c) != rev || !cs.Known || cs.Revision != rev || len(cs.Refused) > 0 {
				return false, fmt.Sprintf("%s: applied %s, status %+v", c, protocol.ShortRevision(applied(st, c)), cs)
			}
		}
		return true, ""
	})
}

func revisionOf(st protocol.Status, c string) protocol.RevisionStatus {
	for _, r := range st.Revisions {
		if r.Client == c {
			return r
		}
	}
	return protocol.RevisionStatus{}
}

// memoryPeak is the highest resident memory seen of a patchd process and
// of the process with its child evaluators.
type memoryPeak struct {
	mu     sync.Mutex // guards patchd and tree
	patchd int64
	tree   int64
	// stop ends the sampling and waits for it.
	stop func()
}

// result stops the sampling and returns the peaks.
func (m *memoryPeak) result() (patchd, tree int64) {
	m.stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.patchd, m.tree
}

// watchMemory samples the memory of p's current process every 50 ms
// until the process exits, the test ends or the result is read.
func watchMemory(t *testing.T, p *patchdProc) *memoryPeak {
	pid, exited := p.cmd.Process.Pid, p.exited
	done := make(chan struct{})
	var (
		once sync.Once
		wg   sync.WaitGroup
	)
	m := &memoryPeak{stop: func() { once.Do(func() { close(done) }); wg.Wait() }}
	t.Cleanup(m.stop)
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-exited:
				return
			case <-tick.C:
			}
			own := rss(pid)
			tree := own
			for _, c := range children(pid) {
				tree += rss(c)
			}
			m.mu.Lock()
			m.patchd, m.tree = max(m.patchd, own), max(m.tree, tree)
			m.mu.Unlock()
		}
	})
	return m
}

// rss is the resident memory of process pid in bytes (0 when gone).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// children lists the child processes of pid.
func children(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
