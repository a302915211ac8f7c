package main

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/internal/signingkey"
	"github.com/patchline/patchline/protocol"
)

// TestMigratedAgentKeepsWorking: an agent enrolled with a patchd on
// SQLite reports to, gets jobs from and answers a patchd on the
// PostgreSQL database the store was migrated into, without enrolling
// again; the new jobs verify with the key it pinned and are numbered
// after the ones it ran.
func TestMigratedAgentKeepsWorking(t *testing.T) {
	repo := t.TempDir()
	if _, err := git.PlainInitWithOptions(repo, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../../examples/demo/fleet", repo)
	commitAll(t, repo, "Demo fleet", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	const secret = "acme-enrollment-secret-0123456789"
	cfg := patchdtest.Config(t, repo, map[string]string{"acme": secret})
	pd := patchdtest.Start(t, cfg)

	const nodeKey = "node-key-of-acme-ws-001-0123456789abcdef"
	var er protocol.EnrollResponse
	if code, body := apitest.Do(t, pd.URL, "POST", protocol.PathEnroll, nil, protocol.EnrollRequest{Client: "acme", Secret: secret,
		InstanceID: "instance-1", NodeKey: nodeKey, Hostname: "ACME-WS-001", OS: protocol.OS{Family: "windows"},
		Labels: map[string]string{"ring": "canary"}}, &er); code != 200 {
		t.Fatalf("enroll: %d %s", code, body)
	}
	auth := map[string]string{"Authorization": "Bearer " + nodeKey, protocol.HeaderEndpoint: er.Endpoint}
	kb := func(id string, installed bool) *protocol.Update {
		return &protocol.Update{ID: id, Source: "windows-update", Name: id, Version: "1", Category: "security", Severity: "critical",
			Released: time.Now().Add(-48 * time.Hour), Installed: installed}
	}
	// round reports updates, takes the job the controller plans for
	// them, checks it, and reports it done.
	round := func(base string, seq int64, jobSeq int64, ups ...*protocol.Update) protocol.JobPayload {
		t.Helper()
		if code, body := apitest.Do(t, base, "POST", protocol.PathReport, auth, protocol.Report{Seq: seq, JobSeq: jobSeq, Hostname: "ACME-WS-001",
			OS: protocol.OS{Family: "windows"}, Labels: map[string]string{"ring": "canary"}, Updates: ups}, nil); code != 200 {
			t.Fatalf("report %d: %d %s", seq, code, body)
		}
		var jr protocol.JobsResponse
		deadline := time.Now().Add(20 * time.Second)
		for len(jr.Jobs) == 0 && time.Now().Before(deadline) {
			if code, body := apitest.Do(t, base, "GET", protocol.PathJobs+"?wait=5s", auth, nil, &jr); code != 200 {
				t.Fatalf("poll: %d %s", code, body)
			}
		}
		if len(jr.Jobs) != 1 {
			t.Fatalf("after report %d: %d jobs, want 1", seq, len(jr.Jobs))
		}
		p, err := protocol.OpenJob(ed25519.PublicKey(er.SigningKey), jr.Jobs[0])
		if err != nil {
			t.Fatalf("the job does not verify with the key the agent pinned: %v", err)
		}
		res := protocol.ResultRequest{Job: p.ID, IdempotencyKey: p.IdempotencyKey}
		for _, u := range p.Updates {
			res.Updates = append(res.Updates, protocol.UpdateResult{Update: u.ID, Result: protocol.ResultSucceeded})
		}
		if code, body := apitest.Do(t, base, "POST", protocol.ResultPath(p.ID), auth, res, nil); code != 200 {
			t.Fatalf("result of %s: %d %s", p.ID, code, body)
		}
		return p
	}
	first := round(pd.URL, 1, 0, kb("KB1", false))
	pd.Stop()

	dsn := pgtest.DB(t)
	if code, out, errOut := run(t, "store", "migrate", "--from", "sqlite://"+filepath.Join(cfg.DataDir, "patchline.db"), "--to", dsn); code != 0 {
		t.Fatalf("store migrate: exit %d: %s", code, errOut)
	} else {
		t.Log(out)
	}
	key, err := signingkey.Load(filepath.Join(cfg.DataDir, signingKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := patchdtest.Config(t, repo, map[string]string{"acme": secret})
	cfg2.Database, cfg2.SigningKey = dsn, key
	pd2 := patchdtest.Start(t, cfg2)

	second := round(pd2.URL, 2, first.Seq, kb("KB1", true), kb("KB2", false))
	if second.Seq <= first.Seq {
		t.Errorf("job numbers %d then %d: the agent would refuse the second as replayed", first.Seq, second.Seq)
	}
	if second.Updates[0].ID != "KB2" {
		t.Errorf("second job installs %v, want KB2", second.Updates)
	}
	var el protocol.EndpointList
	if code, body := apitest.Do(t, pd2.URL, "GET", protocol.PathEndpoints, map[string]string{"Authorization": "Bearer " + patchdtest.AdminToken}, nil, &el); code != 200 || len(el.Endpoints) != 1 {
		t.Errorf("endpoints: %d %s, want the one enrolled before", code, body)
	}
	t.Log("jobs " + strconv.FormatInt(first.Seq, 10) + " then " + fmt.Sprint(second.Seq))
}
