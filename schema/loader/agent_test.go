package loader

import (
	"context"
	"strings"
	"testing"

	"github.com/patchline/patchline/schema"
)

func TestAgentVersion(t *testing.T) {
	const root = `package fleet

defaults: {
	%s
	rings: [
		{name: "canary", select: labels: ring: "canary", window: "always"},
		{name: "broad", select: {}, window: "always"},
	]
}

windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}
`
	const client = `package fleet

client: {id: "acme", name: "Acme", timezone: "UTC"}
%s
`
	for _, tc := range []struct {
		name, root, client string
		// want is the client's version and each ring's ("" for none).
		want        []string
		wantPos     string
		wantProblem string
	}{
		{name: "no agent entry leaves agents alone", want: []string{"", "", ""}},
		{name: "the client's version", client: `agent: version: "1.4.2"`, want: []string{"1.4.2", "", ""}, wantPos: "clients/acme/policy.cue:4:8"},
		{name: "the default's version", root: `agent: version: "1.4.1"`, want: []string{"1.4.1", "", ""}, wantPos: "fleet.cue:4:9"},
		{name: "a client replaces the default", root: `agent: version: "1.4.1"`, client: `agent: version: "1.4.2"`, want: []string{"1.4.2", "", ""}},
		{
			name:   "a ring's own version",
			client: "rings: [\n\t{name: \"canary\", select: labels: ring: \"canary\", window: \"always\", agent: version: \"1.5.0\"},\n\t{name: \"broad\", select: {}, window: \"always\"},\n]",
			want:   []string{"", "1.5.0", ""},
		},
		{name: "not a release version", client: `agent: version: "1.4"`, wantProblem: `agent.version: invalid version "1.4": use a release version MAJOR.MINOR.PATCH, e.g. "1.4.2"`},
		{name: "a development version", client: `agent: version: "1.4.2-rc1"`, wantProblem: "invalid version"},
		{name: "a misspelt field", client: `agent: vrsion: "1.4.2"`, wantProblem: `agent.vrsion: field not allowed: did you mean "version"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string][]byte{
				"cue.mod/module.cue":      []byte("module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n"),
				"fleet.cue":               []byte(strings.Replace(root, "%s", tc.root, 1)),
				"clients/acme/policy.cue": []byte(strings.Replace(client, "%s", tc.client, 1)),
			}
			fleet, err := New(Options{Now: testNow}).LoadFiles(context.Background(), files, "")
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantProblem != "" {
				if len(fleet.Problems) == 0 || !strings.Contains(fleet.Problems[0].Message, tc.wantProblem) {
					t.Fatalf("problems %v, want one containing %q", fleet.Problems, tc.wantProblem)
				}
				return
			}
			c := fleet.Clients["acme"]
			if c == nil {
				t.Fatalf("acme did not load: %v", fleet.Problems)
			}
			version := func(a *schema.AgentPolicy) string {
				if a == nil {
					return ""
				}
				return a.Version
			}
			got := []string{version(c.Agent), version(c.Rings[0].Agent), version(c.Rings[1].Agent)}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("versions (client, canary, broad) %q, want %q", got, tc.want)
				}
			}
			if tc.wantPos != "" && c.Agent.Pos.String() != tc.wantPos {
				t.Errorf("the client's agent entry is at %s, want %s", c.Agent.Pos, tc.wantPos)
			}
		})
	}
}
