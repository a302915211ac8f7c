package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/protocol"
)

// readmeCommands returns the patchctl command lines of the README's
// "Security model" section that manage tokens and endpoints, as argument
// lists without "patchctl", in the order they appear.
func readmeCommands(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Security model\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Security model" section`)
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var cmds [][]string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		block := strings.ReplaceAll(m[1], "\\\n", " ")
		if !strings.Contains(block, "patchctl tokens") && !strings.Contains(block, "patchctl endpoints") {
			continue
		}
		for _, line := range strings.Split(block, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if f[0] != "patchctl" {
				t.Fatalf("README: %q in a block of patchctl commands", line)
			}
			cmds = append(cmds, f[1:])
		}
	}
	return cmds
}

// enrollAt enrolls hostname into client with instance id inst and returns
// its endpoint id and node key.
func enrollAt(t *testing.T, url, client, secret, hostname, inst string) (string, string) {
	t.Helper()
	req := protocol.EnrollRequest{Client: client, Secret: secret, InstanceID: inst,
		NodeKey: "node-key-of-" + inst + "-0123456789abcdefghijkl", Hostname: hostname, OS: protocol.OS{Family: "linux"}}
	var er protocol.EnrollResponse
	if code, body := apitest.Do(t, url, "POST", protocol.PathEnroll, nil, req, &er); code != 200 {
		t.Fatalf("enroll %s: %d %s", hostname, code, body)
	}
	return er.Endpoint, req.NodeKey
}

// report sends an empty inventory of endpoint id and returns the status.
func reportAs(t *testing.T, url, id, nodeKey string) int {
	t.Helper()
	rep := protocol.Report{Seq: 1, Hostname: "host", OS: protocol.OS{Family: "linux"}, Updates: []*protocol.Update{}}
	code, _ := apitest.Do(t, url, "POST", protocol.PathReport,
		map[string]string{"Authorization": "Bearer " + nodeKey, protocol.HeaderEndpoint: id}, rep, nil)
	return code
}

// TestREADMETokenAndEndpointCommands runs the README's token and endpoint
// commands, as written but for the controller's URL, against a real
// patchd, and checks what each did: the CI token reads only its clients
// and stops working once revoked; the revoked endpoint's agent is
// refused; the deleted endpoint is gone.
func TestREADMETokenAndEndpointCommands(t *testing.T) {
	secrets := map[string]string{"acme": "acme-enrollment-secret-0123456789", "initech": "initech-enrollment-secret-0123456789"}
	url, adminFile := startControllerWith(t, secrets)
	cmds := readmeCommands(t)
	if len(cmds) < 7 {
		t.Fatalf("README has %d token and endpoint commands: %q", len(cmds), cmds)
	}

	// The endpoint the README revokes and deletes, and one of a client the
	// CI token is not for.
	var readmeEndpoint string
	for _, c := range cmds {
		if len(c) > 2 && c[0] == "endpoints" && c[1] == "revoke" {
			readmeEndpoint = c[2]
		}
	}
	// Client acme's machine WS-001 enrolls as acme-ws-001.
	id, key := enrollAt(t, url, "acme", secrets["acme"], "WS-001", "instance-ws-001")
	if id != readmeEndpoint {
		t.Fatalf("README revokes %q; acme's WS-001 enrolled as %s", readmeEndpoint, id)
	}
	other, _ := enrollAt(t, url, "initech", secrets["initech"], "INI-001", "instance-initech")

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
	for _, c := range cmds {
		args := make([]string, len(c))
		for i, a := range c {
			args[i] = strings.ReplaceAll(a, "https://patchd:8420", url)
		}
		code, out, errOut := run(t, args...)
		if code != 0 {
			t.Fatalf("patchctl %s: exit %d\n%s%s", strings.Join(c, " "), code, out, errOut)
		}
		switch strings.Join(c[:2], " ") {
		case "tokens create":
			fi, err := os.Stat("ci-token")
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("ci-token: %v, mode %v; want a file only its owner reads", err, fi.Mode())
			}
			if b, _ := os.ReadFile("ci-token"); !strings.HasPrefix(string(b), protocol.TokenPrefix) || strings.Contains(out+errOut, string(b)) {
				t.Errorf("ci-token holds %q; the output %q must not show it", b, out+errOut)
			}
		case "state export":
			b, err := os.ReadFile("state.json")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), id) || strings.Contains(string(b), other) {
				t.Errorf("the CI token's state export shows %s: %v, %s: %v; want acme's only",
					id, strings.Contains(string(b), id), other, strings.Contains(string(b), other))
			}
		case "tokens list":
			if !strings.Contains(out, "ci-fleet") || !strings.Contains(out, "acme,globex") || !strings.Contains(out, "adminToken") {
				t.Errorf("tokens list:\n%s", out)
			}
		case "tokens revoke":
			if code, _, errOut := run(t, "status", "--controller", url, "--token-file", "ci-token"); code == 0 || !strings.Contains(errOut, "revoked") {
				t.Errorf("status with the revoked CI token: exit %d, %q", code, errOut)
			}
		case "endpoints list":
			if !strings.Contains(out, id) || strings.Contains(out, other) {
				t.Errorf("endpoints list --client acme:\n%s", out)
			}
		case "endpoints revoke":
			if code := reportAs(t, url, id, key); code != 401 {
				t.Errorf("the revoked endpoint's report: %d, want 401", code)
			}
		case "endpoints delete":
			if code, out, _ := run(t, "endpoints", "list", "--controller", url, "--token-file", "admin-token"); code != 0 || strings.Contains(out, id) {
				t.Errorf("endpoints list after the deletion (exit %d):\n%s", code, out)
			}
		default:
			t.Errorf("README command %q is not checked here", c)
		}
	}
}

// TestTokensCommands: create prints the secret alone on standard output
// without --out, list shows JSON, the API's refusals come through, and
// patchctl escapes what the controller sends before printing it.
func TestTokensCommands(t *testing.T) {
	url, admin := startController(t)
	t.Setenv("PATCHLINE_TOKEN", "")
	code, out, errOut := run(t, "tokens", "create", "grafana", "--scope", "read", "--controller", url, "--token-file", admin)
	if code != 0 || !strings.HasPrefix(out, protocol.TokenPrefix) || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "shown only this once") {
		t.Fatalf("create without --out: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Setenv("PATCHLINE_TOKEN", strings.TrimSpace(out))
	if code, _, errOut := run(t, "status", "--controller", url); code != 0 {
		t.Errorf("status with the new token from PATCHLINE_TOKEN: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run(t, "tokens", "list", "--controller", url); code == 0 || !strings.Contains(errOut, "needs the admin scope") {
		t.Errorf("tokens list with a read token: exit %d, %q; want a 403 naming the admin scope", code, errOut)
	}
	t.Setenv("PATCHLINE_TOKEN", "")

	code, out, _ = run(t, "tokens", "list", "--format", "json", "--controller", url, "--token-file", admin)
	var tl protocol.TokenList
	if code != 0 || json.Unmarshal([]byte(out), &tl) != nil || len(tl.Tokens) != 1 || tl.Tokens[0].Name != "grafana" {
		t.Errorf("tokens list --format json: exit %d:\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tokens", "create", "ci", "--scope", "backup", "--client", "acme"}, "a token limited to clients can hold only the read scope"},
		{[]string{"tokens", "create", "ci"}, "--scope is required"},
		{[]string{"tokens", "create", "CI", "--scope", "read"}, `name: "CI"`},
		{[]string{"tokens", "revoke", "nobody"}, "no token named"},
		{[]string{"endpoints", "revoke", "acme-nowhere-0000"}, "404"},
		{[]string{"endpoints", "list", "--client", "Acme"}, "client:"},
	} {
		args := append(tc.args, "--controller", url, "--token-file", admin)
		if code, _, errOut := run(t, args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("patchctl %s: exit %d, %q; want an error saying %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// TestListsEscapeWhatTheControllerSends: a controller that is not what it
// claims, or a store tampered with, cannot drive the terminal through
// patchctl's lists.
func TestListsEscapeWhatTheControllerSends(t *testing.T) {
	hostile := "evil\x1b]0;pwned\x07\u202e"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case protocol.PathTokens:
			_ = json.NewEncoder(w).Encode(protocol.TokenList{Tokens: []protocol.Token{
				{Name: hostile, Scopes: []protocol.Scope{protocol.Scope(hostile)}, Clients: []string{hostile}, CreatedBy: hostile}}})
		case protocol.PathEndpoints:
			_ = json.NewEncoder(w).Encode(protocol.EndpointList{Endpoints: []protocol.EndpointInfo{
				{ID: hostile, Client: hostile, Hostname: hostile}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	t.Setenv("PATCHLINE_TOKEN", "some-token-0123456789")
	for _, args := range [][]string{{"tokens", "list"}, {"endpoints", "list"}} {
		code, out, errOut := run(t, append(args, "--controller", srv.URL)...)
		if code != 0 {
			t.Fatalf("%s: exit %d, %s", args, code, errOut)
		}
		if strings.ContainsAny(out, "\x1b\x07\u202e") || !strings.Contains(out, `evil\x1b]0;pwned\x07\u202e`) {
			t.Errorf("%s printed %q, want the control and invisible characters escaped", args, out)
		}
	}
}
