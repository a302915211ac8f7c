package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/protocol"
)

// aptPkg is the throwaway package this test builds; its name differs from
// the apt backend's own test package so both can run at once.
const aptPkg = "patchline-e2e-hello"

// TestRealAptThroughPatchd: an agent with the real apt backend, on an
// isolated dpkg root, enrolls with a real patchd whose fleet approves
// security updates. The job installs 1.1-1 for real, and the controller's
// state shows it installed.
func TestRealAptThroughPatchd(t *testing.T) {
	apttest.Require(t)
	root := apttest.Root(t, aptPkg)
	repo := newFleetRepo(t, "7d", approveNothing)
	c := startController(t, controllerConfig(t, repo))

	startAptAgent(t, c.URL, "acme-deb-0001", "canary", root)
	waitFor(t, "the endpoint enrolled", 60*time.Second, func() (bool, string) {
		return clientStatus(status(t, c.URL), client).Endpoints == 1, ""
	})
	rev := repo.approve(approveSecurity)
	want := aptPkg + "@1.1-1"
	waitFor(t, want+" installed", 2*time.Minute, func() (bool, string) {
		cs := clientStatus(status(t, c.URL), client)
		for _, ep := range snapshot(t, c.URL).Endpoints {
			for _, u := range ep.Updates {
				if u.ID == want && u.Installed && len(u.Attempts) == 1 && u.Attempts[0].Result == protocol.ResultSucceeded {
					return cs.Revision == rev && cs.Compliant == 1, ""
				}
			}
		}
		return false, "not yet"
	})
	if got, err := os.ReadFile(filepath.Join(root, "opt", aptPkg, "hello.txt")); err != nil || string(got) != "hello from 1.1-1\n" {
		t.Errorf("file in the isolated root = %q, %v; want the 1.1-1 content", got, err)
	}
	if _, err := os.Stat(filepath.Join("/opt", aptPkg)); err == nil {
		t.Errorf("/opt/%s exists on the host: the backend escaped its root", aptPkg)
	}
}
