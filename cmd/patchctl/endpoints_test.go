package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/internal/render"
	"github.com/patchline/patchline/protocol"
)

// endpointsPolicy rolls critical security updates out to the canary,
// then to everyone else, in a window always open, and holds KB5034441 on
// the SQL server.
const endpointsPolicy = `package fleet

client: {id: "acme", name: "Acme Dental", timezone: "UTC"}
windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}
rings: [
	{name: "canary", select: labels: ring: "canary", window: "always", soak: "0m"},
	{name: "broad", select: {}, window: "always", soak: "0m"},
]
baseline: approve: [{name: "critical", category: ["security"], minSeverity: "critical"}]
exclusions: [{update: "KB5034441", select: hostnames: ["ACME-SQL01"], reason: "breaks the EHR vendor app", until: "2099-12-31"}]
`

// TestEndpointsCommand runs patchctl endpoints against a real patchd: the
// canary's install fails, the broad ring waits for it, the SQL server
// holds the update, a fourth endpoint never reported, and an endpoint of
// a client the fleet repo does not have reports too.
func TestEndpointsCommand(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := git.PlainInitWithOptions(repoDir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	applied := commitFiles(t, repo, repoDir, map[string]string{
		"cue.mod/module.cue":      "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n",
		"fleet.cue":               "package fleet\n",
		"clients/acme/policy.cue": endpointsPolicy,
	}, "Onboard Acme Dental (#1)")
	secrets := map[string]string{"acme": "acme-enrollment-secret", "initech": "initech-enrollment-secret"}
	p := patchdtest.Start(t, patchdtest.Config(t, repoDir, secrets))
	p.WaitStatus("the first revision", func(st protocol.Status) bool {
		for _, r := range st.Revisions {
			if r.Client == "acme" && r.Applied == applied {
				return true
			}
		}
		return false
	})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(patchdtest.AdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, headers map[string]string, body, out any) {
		t.Helper()
		if code, resp := apitest.Do(t, p.URL, method, path, headers, body, out); code != 200 {
			t.Fatalf("%s %s: %d %s", method, path, code, resp)
		}
	}

	released := time.Now().Add(-20 * 24 * time.Hour).UTC().Truncate(time.Second)
	kb := func() *protocol.Update {
		return &protocol.Update{ID: "KB5034441", Source: "windows-update", Name: "KB5034441", Title: "Cumulative Update",
			Category: "security", Severity: "critical", Released: released}
	}
	type endpoint struct{ id, key string }
	eps := map[string]endpoint{}
	for _, e := range []struct {
		client, host, ring string
		report             bool
	}{
		{"acme", "ACME-WS-01", "canary", true},
		{"acme", "ACME-WS-02", "broad", true},
		{"acme", "ACME-SQL01", "broad", true},
		{"acme", "ACME-WS-03", "broad", false},
		{"initech", "INITECH-PC", "", true},
	} {
		key := "node-key-0123456789abcdef0123456789abcdef-" + e.host
		labels := map[string]string{}
		if e.ring != "" {
			labels["ring"] = e.ring
		}
		var resp protocol.EnrollResponse
		do("POST", protocol.PathEnroll, nil, protocol.EnrollRequest{
			Client: e.client, Secret: secrets[e.client], InstanceID: "instance-" + e.host, NodeKey: key,
			Hostname: e.host, OS: protocol.OS{Family: "windows"}, Labels: labels,
		}, &resp)
		eps[e.host] = endpoint{resp.Endpoint, key}
		if e.report {
			do("POST", protocol.PathReport, map[string]string{"Authorization": "Bearer " + key, protocol.HeaderEndpoint: resp.Endpoint},
				protocol.Report{Seq: 1, Hostname: e.host, OS: protocol.OS{Family: "windows"}, Labels: labels, Updates: []*protocol.Update{kb()}}, nil)
		}
	}
	if got, want := eps["ACME-WS-01"].id, "acme-ws-01"; got != want {
		t.Errorf("ACME-WS-01 of acme enrolled as %s, want %s", got, want)
	}

	// The canary long-polls for its job, and the install fails.
	ws := map[string]string{"Authorization": "Bearer " + eps["ACME-WS-01"].key, protocol.HeaderEndpoint: eps["ACME-WS-01"].id}
	var jobs protocol.JobsResponse
	for deadline := time.Now().Add(30 * time.Second); len(jobs.Jobs) == 0; {
		do("GET", protocol.PathJobs+"?wait=5s", ws, nil, &jobs)
		if time.Now().After(deadline) {
			t.Fatal("no job for the canary")
		}
	}
	var job protocol.JobPayload
	if err := json.Unmarshal(jobs.Jobs[0].Payload, &job); err != nil {
		t.Fatal(err)
	}
	do("POST", protocol.ResultPath(job.ID), ws, protocol.ResultRequest{
		Job: job.ID, IdempotencyKey: job.IdempotencyKey,
		Updates: []protocol.UpdateResult{{Update: "KB5034441", Result: protocol.ResultFailed, Error: "0x80070643", At: time.Now()}},
	}, nil)

	// Run from a subdirectory of the fleet repo, as a technician would.
	t.Chdir(filepath.Join(repoDir, "clients", "acme"))
	args := func(extra ...string) []string {
		return append([]string{"endpoints", "--controller", p.URL, "--token-file", tokenFile}, extra...)
	}
	code, out, errOut := run(t, args("--format", "json")...)
	if code != 0 {
		t.Fatalf("endpoints --format json: exit %d: %s", code, errOut)
	}
	var list struct{ Endpoints []render.EndpointDrift }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	type row struct {
		ID, Hostname, Ring string
		Reported           bool
		Missing, Failed    int
	}
	var got []row
	for _, e := range list.Endpoints {
		got = append(got, row{e.ID, e.Hostname, e.Ring, !e.LastSeen.IsZero(), e.Missing, e.Failed})
	}
	want := []row{
		{"acme-sql01", "ACME-SQL01", "broad", true, 0, 0},
		{"acme-ws-01", "ACME-WS-01", "canary", true, 1, 1},
		{"acme-ws-02", "ACME-WS-02", "broad", true, 1, 0},
		{"acme-ws-03", "ACME-WS-03", "", false, 0, 0},
		{"initech-pc", "INITECH-PC", "", true, 0, 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}

	tests := []struct {
		name  string
		extra []string
		lines []string // the table's lines, each as its first fields
	}{
		{"drifting", []string{"--drifting"}, []string{"ID HOSTNAME RING", "acme-ws-01 ACME-WS-01 canary", "acme-ws-02 ACME-WS-02 broad"}},
		{"one client", []string{"--client", "initech"}, []string{"ID HOSTNAME RING", "initech-pc INITECH-PC -"}},
		{"one client, drifting", []string{"--client", "initech", "--drifting"}, []string{"ID HOSTNAME RING"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, args(tt.extra...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				lines = append(lines, strings.Join(strings.Fields(l)[:3], " "))
			}
			if diff := cmp.Diff(tt.lines, lines); diff != "" {
				t.Errorf("lines (-want +got):\n%s\n%s", diff, out)
			}
		})
	}

	t.Run("the last line of a drifting endpoint", func(t *testing.T) {
		_, out, _ := run(t, args("--drifting")...)
		f := strings.Fields(strings.Split(out, "\n")[1])
		if len(f) != 8 || f[6] != "1" || f[7] != "1" {
			t.Errorf("acme-ws-01's line: %q, want MISSING 1 and FAILED 1", f)
		}
	})

	other := t.TempDir()
	otherRepo, err := git.PlainInit(other, false)
	if err != nil {
		t.Fatal(err)
	}
	commitFiles(t, otherRepo, other, map[string]string{"README": "not the fleet\n"}, "Another repository")
	for _, tt := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"a clone without the revision", []string{"--repo", other}, "the controller runs from " + other + " (fetch the fleet repo first)"},
		{"a bad client id", []string{"--client", "Acme"}, "--client:"},
		{"markdown", []string{"--format", "markdown"}, `unknown format "markdown": want text or json`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, args(tt.extra...)...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q, want it to contain %q", code, errOut, tt.want)
			}
		})
	}
}
