package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend/apt"
	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/internal/history"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// rollbackPkg is the throwaway package the rollback test builds at 1.0 and
// 2.0; its name differs from the other apt tests' packages.
const rollbackPkg = "patchline-e2e-rollback"

// rollbackCUE is acme's policy file with one rollback entry for every
// endpoint: the update, the reason and the ticket.
const rollbackCUE = acmeCUE + `
rollback: [{update: %q, select: {}, reason: %q, ticket: %q}]
`

// TestRealAptRollbackThroughPatchd: agents with the real apt backend, each
// on its own isolated dpkg root, enroll with a real patchd following a real
// fleet repo. An approve commit installs the newer version through jobs;
// a commit adding a rollback entry for it then has patchd roll it back,
// ring by ring, and apt downgrades each root for real; once the entry is
// dropped, 2.0 is installed again. Where no older version is left, the
// rollback fails and says so.
func TestRealAptRollbackThroughPatchd(t *testing.T) {
	apttest.Require(t)
	if apttest.HostHas(t, rollbackPkg) || apttest.HostHas(t, aptPkg) {
		t.Fatalf("the host already has %s or %s installed; remove them first", rollbackPkg, aptPkg)
	}

	t.Run("2.0 rolled back to 1.0 canary then broad, installed again once the entry goes", func(t *testing.T) {
		const update, reason, ticket = rollbackPkg + "@2.0", "2.0 breaks the imaging bridge", "OPS-4312"
		roots := map[string]string{
			"acme-deb-canary": apttest.RollbackRoot(t, rollbackPkg, "1.0", "1.0", "2.0"),
			"acme-deb-broad":  apttest.RollbackRoot(t, rollbackPkg, "1.0", "1.0", "2.0"),
		}
		repo := newFleetRepo(t, "7d", approveNothing)
		c := startController(t, controllerConfig(t, repo))
		startAptAgent(t, c.URL, "acme-deb-canary", "canary", roots["acme-deb-canary"])
		startAptAgent(t, c.URL, "acme-deb-broad", "broad", roots["acme-deb-broad"])
		waitFor(t, "both endpoints enrolled and reported", 2*time.Minute, func() (bool, string) {
			cs := clientStatus(status(t, c.URL), client)
			return cs.Endpoints == 2 && cs.Stale == 0, fmt.Sprintf("%+v", cs)
		})

		// The throwaway repository is no security suite: approve bug fixes.
		rev := repo.approve(`[{name: "bugfix", category: ["bugfix"]}]`)
		waitFor(t, update+" installed on both endpoints", 3*time.Minute, func() (bool, string) {
			snap := snapshot(t, c.URL)
			for host := range roots {
				if u := updateOf(snap, host, update); u == nil || !u.Installed {
					return false, fmt.Sprintf("%s: %s", host, describeUpdate(u))
				}
			}
			return clientStatus(status(t, c.URL), client).Revision == rev, "not planned at " + rev
		})
		for host, root := range roots {
			if got := dpkgVersion(t, root, rollbackPkg); got != "2.0" {
				t.Fatalf("%s: dpkg in the isolated root says %s %q after the install, want 2.0", host, rollbackPkg, got)
			}
		}

		repo.write(map[string]string{"clients/acme/policy.cue": fmt.Sprintf(rollbackCUE, update, reason, ticket)})
		rev = repo.commit("Roll back " + update)
		waitFor(t, update+" rolled back on both endpoints", 3*time.Minute, func() (bool, string) {
			snap := snapshot(t, c.URL)
			for host := range roots {
				u := updateOf(snap, host, update)
				if u == nil || u.Installed || u.InFlightJob != nil || lastAttempt(u).Action != protocol.ActionRollback {
					return false, fmt.Sprintf("%s: %s", host, describeUpdate(u))
				}
				// The inventory after the rollback job shows 1.0 again.
				if old := updateOf(snap, host, rollbackPkg+"@1.0"); old == nil || !old.Installed {
					return false, host + ": no inventory with 1.0 installed yet"
				}
			}
			return true, ""
		})

		// A further commit to acme re-plans it against the inventories
		// sent after the rollbacks: nothing installs 2.0 again.
		repo.write(map[string]string{"clients/acme/policy.cue": strings.Replace(fmt.Sprintf(rollbackCUE, update, reason, ticket),
			`"Acme Dental"`, `"Acme Dental Group"`, 1)})
		rev = repo.commit("Rename acme while the rollback stands")
		waitFor(t, "acme planned at "+rev, time.Minute, func() (bool, string) {
			cs := clientStatus(status(t, c.URL), client)
			return cs.Revision == rev, fmt.Sprintf("%+v", cs)
		})

		// Rolled back as the policy asks is compliant.
		if cs := clientStatus(status(t, c.URL), client); cs.Compliant != 2 || cs.Missing != 0 {
			t.Errorf("status after the rollback %+v, want both endpoints compliant, nothing missing", cs)
		}
		snap := snapshot(t, c.URL)
		rollbackDone := map[string]time.Time{}
		for host, root := range roots {
			if got := dpkgVersion(t, root, rollbackPkg); got != "1.0" {
				t.Errorf("%s: dpkg in the isolated root says %s %q after the rollback, want 1.0", host, rollbackPkg, got)
			}
			if got, err := os.ReadFile(filepath.Join(root, "opt", rollbackPkg, "version.txt")); err != nil || string(got) != "1.0\n" {
				t.Errorf("%s: version.txt in the isolated root = %q, %v; want 1.0's", host, got, err)
			}
			u := updateOf(snap, host, update)
			if u == nil || u.Installed || u.InFlightJob != nil || len(u.Attempts) != 2 {
				t.Errorf("%s: %s in the controller's state: %s; want not installed, no job in flight, an install and a rollback attempt", host, update, describeUpdate(u))
				continue
			}
			install, rollback := u.Attempts[0], u.Attempts[1]
			if install.Action != protocol.ActionInstall || install.Result != protocol.ResultSucceeded {
				t.Errorf("%s: first attempt %+v, want a succeeded install", host, install)
			}
			if rollback.Action != protocol.ActionRollback || rollback.Result != protocol.ResultSucceeded || rollback.Error != "" {
				t.Errorf("%s: second attempt %+v, want a succeeded rollback", host, rollback)
			}
			rollbackDone[host] = rollback.At

			// patchctl why: the update is held while the entry stands,
			// citing it with its reason and ticket.
			x := explain(t, repo, snap, host, update)
			wantReason := "rolled back: " + reason + " (" + ticket + "); not installed again while the rollback entry stands"
			if x.Decision.Decision != plan.Excluded || x.Decision.Reason != wantReason {
				t.Errorf("%s: why %s = %s %q, want %s %q", host, update, x.Decision.Decision, x.Decision.Reason, plan.Excluded, wantReason)
			}
			if x.Rollback == nil || x.Rollback.Detail != "rollback: "+reason+" ("+ticket+")" || !strings.HasPrefix(x.Rollback.Rule, "clients/acme/policy.cue:") {
				t.Errorf("%s: why cites rollback %+v, want the entry in clients/acme/policy.cue with its reason and ticket", host, x.Rollback)
			}
		}

		// The audit log holds one install job and one rollback job per
		// endpoint, each with its result; the broad ring's rollback job
		// was created only after the canary's rollback succeeded.
		jobs := auditJobs(t, audit(t, c.URL))
		hostOf := map[string]string{}
		for _, ep := range snap.Endpoints {
			hostOf[ep.ID] = ep.Hostname
		}
		perHost := map[string][]auditJob{}
		for _, j := range jobs {
			perHost[hostOf[j.endpoint]] = append(perHost[hostOf[j.endpoint]], j)
		}
		for host := range roots {
			got := perHost[host]
			var desc []string
			for _, j := range got {
				desc = append(desc, fmt.Sprintf("%s %q %v result=%s", j.ring, j.action, j.updates, j.result))
			}
			if len(got) != 2 || got[0].action != protocol.ActionInstall || got[1].action != protocol.ActionRollback {
				t.Errorf("%s: jobs %s; want one install job, then one rollback job", host, strings.Join(desc, "; "))
				continue
			}
			for _, j := range got {
				if len(j.updates) != 1 || j.updates[0] != update || j.result != "succeeded=1" {
					t.Errorf("%s: job %s %q for %v, result %q; want %s, succeeded=1", host, j.id, j.action, j.updates, j.result, update)
				}
			}
			if want := strings.TrimPrefix(host, "acme-deb-"); got[1].ring != want {
				t.Errorf("%s: rollback job in ring %q, want %q", host, got[1].ring, want)
			}
		}
		if b := perHost["acme-deb-broad"]; len(b) == 2 && b[1].created.Before(rollbackDone["acme-deb-canary"]) {
			t.Errorf("the broad ring's rollback job was created at %s, before the canary's rollback succeeded at %s",
				b[1].created.Format(time.RFC3339Nano), rollbackDone["acme-deb-canary"].Format(time.RFC3339Nano))
		}

		// Removing the entry lets the approve rule install 2.0 again: a new
		// job, which the agents do not answer from their record of the
		// first install.
		repo.write(map[string]string{"clients/acme/policy.cue": acmeCUE})
		rev = repo.commit("Drop the rollback of " + update)
		waitFor(t, update+" installed again on both endpoints", 3*time.Minute, func() (bool, string) {
			snap := snapshot(t, c.URL)
			for host := range roots {
				if u := updateOf(snap, host, update); u == nil || !u.Installed || len(u.Attempts) != 3 {
					return false, fmt.Sprintf("%s: %s", host, describeUpdate(u))
				}
			}
			return clientStatus(status(t, c.URL), client).Revision == rev, "not planned at " + rev
		})
		for host, root := range roots {
			if got := dpkgVersion(t, root, rollbackPkg); got != "2.0" {
				t.Errorf("%s: dpkg in the isolated root says %s %q after the entry was dropped, want 2.0", host, rollbackPkg, got)
			}
			if a := lastAttempt(updateOf(snapshot(t, c.URL), host, update)); a.Action != protocol.ActionInstall || a.Result != protocol.ResultSucceeded {
				t.Errorf("%s: last attempt %+v, want a succeeded install", host, a)
			}
		}
		// patchctl history --update: the commits that added and dropped
		// the entry, with its reason and ticket.
		h, err := history.Build(t.Context(), loader.New(loader.Options{}), repo.dir, history.Options{Update: update})
		if err != nil {
			t.Fatal(err)
		}
		var changes []string
		for _, cm := range h.Commits {
			for _, cc := range cm.Clients {
				for _, ch := range cc.Changes {
					changes = append(changes, cm.Subject+": "+ch.String())
				}
			}
		}
		entry := "rollback " + update + " on every endpoint (reason: " + reason + ", ticket " + ticket + ")"
		if want := []string{"Drop the rollback of " + update + ": - " + entry, "Roll back " + update + ": + " + entry}; !slices.Equal(changes, want) {
			t.Errorf("history of %s:\n%s\nwant:\n%s", update, strings.Join(changes, "\n"), strings.Join(want, "\n"))
		}
		if apttest.HostHas(t, rollbackPkg) {
			t.Errorf("the host's dpkg database now has %s: the backend escaped its root", rollbackPkg)
		}
	})

	t.Run("no older version available", func(t *testing.T) {
		// 1.0-1 was installed from a package file no source offers: after
		// the job installs 1.1-1 there is nothing to return to.
		const update, host = aptPkg + "@1.1-1", "acme-deb-0002"
		root := apttest.Root(t, aptPkg)
		repo := newFleetRepo(t, "7d", approveSecurity)
		c := startController(t, controllerConfig(t, repo))
		startAptAgent(t, c.URL, host, "canary", root)
		waitFor(t, update+" installed", 3*time.Minute, func() (bool, string) {
			u := updateOf(snapshot(t, c.URL), host, update)
			return u != nil && u.Installed, describeUpdate(u)
		})

		repo.write(map[string]string{"clients/acme/policy.cue": fmt.Sprintf(rollbackCUE, update, "test the rollback path", "OPS-4313")})
		rev := repo.commit("Roll back " + update)
		want := "cannot roll back " + aptPkg + " 1.1-1: no older version available"
		var u *protocol.Update
		waitFor(t, "the rollback job's result", 3*time.Minute, func() (bool, string) {
			u = updateOf(snapshot(t, c.URL), host, update)
			if u == nil || u.InFlightJob != nil || lastAttempt(u).Action != protocol.ActionRollback {
				return false, describeUpdate(u)
			}
			return clientStatus(status(t, c.URL), client).Revision == rev, "not planned at " + rev
		})
		if a := lastAttempt(u); a.Result != protocol.ResultFailed || !strings.Contains(a.Error, want) {
			t.Errorf("rollback attempt %+v, want failed with %q", a, want)
		}
		if !u.Installed {
			t.Errorf("%s not installed in the controller's state after a failed rollback: %s", update, describeUpdate(u))
		}
		// patchctl why: the rollback failed, with the backend's reason.
		if x := explain(t, repo, snapshot(t, c.URL), host, update); x.Decision.Decision != plan.Failed || !strings.Contains(x.Decision.Reason, "rollback failed at ") || !strings.Contains(x.Decision.Reason, want) {
			t.Errorf("why %s = %s %q, want %s: rollback failed, %q", update, x.Decision.Decision, x.Decision.Reason, plan.Failed, want)
		}
		var rollbacks []auditJob
		for _, j := range auditJobs(t, audit(t, c.URL)) {
			if j.action == protocol.ActionRollback {
				rollbacks = append(rollbacks, j)
			}
		}
		if len(rollbacks) != 1 || rollbacks[0].result != "succeeded=0 other=1" {
			t.Errorf("rollback jobs %+v, want one, failed; a failed rollback waits for the next window", rollbacks)
		}
		if got := dpkgVersion(t, root, aptPkg); got != "1.1-1" {
			t.Errorf("dpkg in the isolated root says %s %q after the failed rollback, want 1.1-1 still", aptPkg, got)
		}
	})
}

// startAptAgent runs an in-process agent with the real apt backend on the
// isolated root until the test ends.
func startAptAgent(t *testing.T, controller, host, ring, root string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ag, err := agent.New(agent.Config{
		Controller: controller, Client: client, EnrollSecret: acmeSecret, StateDir: t.TempDir(),
		Hostname: host, OS: protocol.OS{Family: "linux", Version: "debian 12"}, Labels: map[string]string{"ring": ring},
		Backend:      apt.New(run.Exec{}, apt.Options{Root: root, Logger: quiet}),
		RetryWaitMin: 20 * time.Millisecond, RetryWaitMax: 500 * time.Millisecond,
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", host, err)
		}
	})
}

// updateOf is update id as the controller holds it for the endpoint named
// host, or nil.
func updateOf(snap *protocol.Snapshot, host, id string) *protocol.Update {
	for _, ep := range snap.Endpoints {
		if ep.Hostname != host {
			continue
		}
		for _, u := range ep.Updates {
			if u.ID == id {
				return u
			}
		}
	}
	return nil
}

// lastAttempt is u's latest attempt, or the zero attempt.
func lastAttempt(u *protocol.Update) protocol.Attempt {
	if u == nil || len(u.Attempts) == 0 {
		return protocol.Attempt{}
	}
	return u.Attempts[len(u.Attempts)-1]
}

func describeUpdate(u *protocol.Update) string {
	if u == nil {
		return "not reported"
	}
	return fmt.Sprintf("installed=%v inFlight=%v attempts=%+v", u.Installed, u.InFlightJob != nil, u.Attempts)
}

// dpkgVersion is the version of pkg dpkg has installed in root.
func dpkgVersion(t *testing.T, root, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var", "lib", "dpkg"), "-W", "-f=${Version} ${db:Status-Status}", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-query %s in %s: %v\n%s", pkg, root, err, out)
	}
	version, st, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if st != "installed" {
		return version + " (" + st + ")"
	}
	return version
}

// explain is what `patchctl why` says of update on the endpoint named host:
// the fleet repo's working tree and the controller's state, planned now.
func explain(t *testing.T, repo *fleetRepo, snap *protocol.Snapshot, host, update string) *plan.Explanation {
	t.Helper()
	fleet, err := loader.New(loader.Options{}).LoadDir(t.Context(), repo.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range fleet.Problems {
		if p.Level == schema.LevelError {
			t.Fatalf("fleet repo: %s", p)
		}
	}
	for _, ep := range snap.Endpoints {
		if ep.Hostname == host {
			x, err := plan.Explain(fleet, snap, time.Now(), ep.ID, update)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
	}
	t.Fatalf("no endpoint %s in the controller's state", host)
	return nil
}

// auditJob is a job as the audit log tells it: its job-created entry and
// its job-result entry's counts.
type auditJob struct {
	id, endpoint, ring, action string
	updates                    []string
	created                    time.Time
	// result is the job-result entry's counts ("succeeded=1"), "" before.
	result string
}

// auditJobs reads the jobs out of the audit log, in creation order.
func auditJobs(t *testing.T, log []auditEntry) []auditJob {
	t.Helper()
	var jobs []auditJob
	index := map[string]int{}
	for _, e := range log {
		switch protocol.AuditKind(e.Kind) {
		case protocol.AuditJobCreated:
			var d struct {
				Ring    string   `json:"ring"`
				Updates []string `json:"updates"`
				Action  string   `json:"action"`
			}
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				t.Fatalf("audit entry %d: %v", e.ID, err)
			}
			index[e.Job] = len(jobs)
			jobs = append(jobs, auditJob{id: e.Job, endpoint: e.Endpoint, ring: d.Ring, action: d.Action, updates: d.Updates, created: e.At})
		case protocol.AuditJobResult:
			var d struct{ Succeeded, Failed, Refused, Unknown int }
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				t.Fatalf("audit entry %d: %v", e.ID, err)
			}
			if k, ok := index[e.Job]; ok {
				jobs[k].result = fmt.Sprintf("succeeded=%d", d.Succeeded)
				if n := d.Failed + d.Refused + d.Unknown; n > 0 {
					jobs[k].result += fmt.Sprintf(" other=%d", n)
				}
			}
		}
	}
	return jobs
}
