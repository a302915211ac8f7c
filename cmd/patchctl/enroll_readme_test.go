package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/protocol"
)

// TestREADMEEnrollCommands runs the README's "Enrolling endpoints"
// commands, as written but for the controller's URL, against a real
// patchd whose secrets file knows no client: the token create makes
// enrolls an endpoint of acme with its labels, list shows it, and once
// revoke has run the token enrolls nothing.
func TestREADMEEnrollCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	const heading = "### Enrolling endpoints"
	start := strings.Index(readme, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	section := readme[start+1+len(heading):]
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	var cmds [][]string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		for _, line := range strings.Split(strings.ReplaceAll(m[1], "\\\n", " "), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				if f[0] != "patchctl" {
					t.Fatalf("README: %q in a block of patchctl commands", line)
				}
				cmds = append(cmds, f[1:])
			}
		}
	}
	if len(cmds) != 3 || cmds[0][1] != "create" || cmds[1][1] != "list" || cmds[2][1] != "revoke" {
		t.Fatalf("README's enroll commands: %q; want create, list and revoke", cmds)
	}

	url, adminFile := startController(t)
	admin, err := os.ReadFile(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := os.WriteFile("admin-token", admin, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATCHLINE_TOKEN", "")
	t.Setenv("PATCHLINE_ADMIN_TOKEN", "")
	runREADME := func(c []string) string {
		t.Helper()
		args := make([]string, len(c))
		for i, a := range c {
			args[i] = strings.ReplaceAll(a, "https://patchd:8420", url)
		}
		code, out, errOut := run(t, args...)
		if code != 0 {
			t.Fatalf("patchctl %s: exit %d: %s", strings.Join(c, " "), code, errOut)
		}
		return out
	}

	out := runREADME(cmds[0])
	if !strings.Contains(out, "patch-agent run --client acme --enroll-token-file acme-pilot.token") {
		t.Errorf("create does not say how the agent uses the token:\n%s", out)
	}
	token, err := os.ReadFile("acme-pilot.token")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat("acme-pilot.token"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, %v; want mode 0600", fi, err)
	}
	secret := strings.TrimSpace(string(token))
	id, key := enrollAt(t, url, "acme", secret, "WS-001", "instance-ws-001")
	if code := reportAs(t, url, id, key); code != 200 {
		t.Fatalf("report of the endpoint the token enrolled: %d", code)
	}
	var snap protocol.Snapshot
	if code, body := apitest.Do(t, url, "GET", "/v1/state", map[string]string{"Authorization": "Bearer " + strings.TrimSpace(string(admin))}, nil, &snap); code != 200 {
		t.Fatalf("state: %d %s", code, body)
	}
	if len(snap.Endpoints) != 1 || snap.Endpoints[0].Labels["ring"] != "pilot" || snap.Endpoints[0].Labels["site"] != "hq" {
		t.Errorf("state after the report: %+v; want %s with the token's labels", snap.Endpoints, id)
	}

	out = runREADME(cmds[1])
	if !regexp.MustCompile(`acme-pilot +acme +active +1/100 .* ring=pilot,site=hq`).MatchString(out) {
		t.Errorf("list does not show the token with one use of 100 and its labels:\n%s", out)
	}
	runREADME(cmds[2])
	req := protocol.EnrollRequest{Client: "acme", Secret: secret, InstanceID: "instance-ws-002",
		NodeKey: "node-key-of-instance-ws-002-0123456789abcdef", Hostname: "WS-002", OS: protocol.OS{Family: "linux"}}
	if code, body := apitest.Do(t, url, "POST", protocol.PathEnroll, nil, req, nil); code != 403 || !strings.Contains(string(body), "revoked") {
		t.Errorf("enrollment with the revoked token: %d %s, want 403 saying it is revoked", code, body)
	}
}
