package commitstatus

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

func TestDescriptionIsOneBoundedLine(t *testing.T) {
	long := strings.Repeat("é", 200)
	tests := []struct {
		name, head, detail, want string
	}{
		{"head and detail", "refused", "fleet.cue:3:1: bad", "refused: fleet.cue:3:1: bad"},
		{"no detail", "refused", "", "refused"},
		{"no head", "", "KB1 halted", "KB1 halted"},
		{"a multi-line message on one line", "refused", "fleet.cue:3:1: conflicting values:\n\t\"a\"\r\n  and \"b\"", `refused: fleet.cue:3:1: conflicting values: "a" and "b"`},
		{"control and invisible characters escaped", "", "KB\x1b[31m1\u202eevil", `KB\x1b[31m1\u202eevil`},
		{"not UTF-8", "", "KB\xff1", `KB\xff1`},
		{"exactly 140 characters kept", "", strings.Repeat("é", 140), strings.Repeat("é", 140)},
		{"longer cut at a character, with an ellipsis", "refused", long, "refused: " + strings.Repeat("é", 130) + "…"},
		{"no space left before the ellipsis", "", strings.Repeat("a", 138) + " bc", strings.Repeat("a", 138) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(tt.head, tt.detail)
			if got != tt.want {
				t.Errorf("describe(%q, %q)\n got %q\nwant %q", tt.head, tt.detail, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > maxDescription || !utf8.ValidString(got) || strings.ContainsAny(got, "\n\r\t") {
				t.Errorf("%q: %d characters, want one valid line of at most %d", got, n, maxDescription)
			}
		})
	}
}

// TestStatusesPerCommitAreBounded: a commit of a fleet of 100 clients
// gets one status when it applies, and at most 1+maxClientStatuses when
// every client is refused; the commit's own status counts them all.
func TestStatusesPerCommitAreBounded(t *testing.T) {
	var clients []string
	refused := map[string][]string{}
	for i := range 100 {
		id := fmt.Sprintf("client%03d", i)
		clients = append(clients, id)
		refused[id] = []string{fmt.Sprintf("clients/%s/policy.cue:1:1: bad", id)}
	}
	if got := appliedStatuses(revA, clients, nil); len(got) != 1 || got[0].Description != "applied to 100 clients" {
		t.Errorf("applied to 100 clients: %+v", got)
	}
	got := appliedStatuses(revA, nil, refused)
	if len(got) != 1+maxClientStatuses {
		t.Fatalf("%d statuses, want %d", len(got), 1+maxClientStatuses)
	}
	if want := "100 of 100 clients refused: clients/client000/policy.cue:1:1: bad"; got[0].Description != want {
		t.Errorf("commit status %q, want %q", got[0].Description, want)
	}
	var contexts []string
	for _, s := range got[1:] {
		contexts = append(contexts, s.Context)
	}
	want := []string{"patchline/apply/client000", "patchline/apply/client001", "patchline/apply/client002", "patchline/apply/client003", "patchline/apply/client004"}
	if diff := cmp.Diff(want, contexts); diff != "" {
		t.Errorf("client statuses (-want +got):\n%s", diff)
	}
}

func TestHaltStatus(t *testing.T) {
	tests := []struct {
		name  string
		halts []protocol.Halt
		want  Status
	}{
		{"none: resumed", nil, Status{revA, "patchline/rollout/acme", Success, "no rollout halted"}},
		{"one", []protocol.Halt{halt}, Status{revA, "patchline/rollout/acme", Failure, "KB5034441 " + halt.Reason}},
		{"several: the first by update, and how many", []protocol.Halt{
			{Update: "Mozilla.Firefox@139.0.1", Ring: "pilot", Reason: "halted in ring pilot: 2 of 4 endpoints failed (50%), above maxFailures 10%; a resume entry lifts it"},
			{Update: "KB5035000", Ring: "canary"},
		}, Status{revA, "patchline/rollout/acme", Failure, "2 rollouts halted: KB5035000 halted in ring canary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := haltStatus(revA, "acme", tt.halts); got != tt.want {
				t.Errorf("haltStatus\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"off", Config{}, ""},
		{"GitHub with its default API", Config{Provider: GitHub, Repo: "msp/fleet", Token: "t"}, ""},
		{"GitHub Enterprise Server", Config{Provider: GitHub, API: "https://github.msp.example/api/v3", Repo: "msp/fleet", Token: "t"}, ""},
		{"GitLab by path with groups", Config{Provider: GitLab, Repo: "msp/infra/fleet", Token: "t"}, ""},
		{"GitLab by numeric id", Config{Provider: GitLab, API: "https://gitlab.msp.example/api/v4", Repo: "4242", Token: "t"}, ""},
		{"Gitea on loopback over http", Config{Provider: Gitea, API: "http://127.0.0.1:3000/api/v1", Repo: "msp/fleet", Token: "t"}, ""},
		{"flags without a provider", Config{Repo: "msp/fleet"}, "used only with --status-provider"},
		{"unknown provider", Config{Provider: "bitbucket", Repo: "msp/fleet", Token: "t"}, `--status-provider "bitbucket": want github, gitlab or gitea`},
		{"no repo", Config{Provider: GitHub, Token: "t"}, "needs --status-repo OWNER/NAME"},
		{"no token", Config{Provider: GitHub, Repo: "msp/fleet"}, "needs --status-token-file FILE"},
		{"a token of two lines", Config{Provider: GitHub, Repo: "msp/fleet", Token: "t\r\nX-Evil: 1"}, "one word on one line"},
		{"Gitea without its API", Config{Provider: Gitea, Repo: "msp/fleet", Token: "t"}, "needs --status-api URL"},
		{"GitHub repo with a group", Config{Provider: GitHub, Repo: "msp/infra/fleet", Token: "t"}, "want OWNER/NAME"},
		{"GitLab project without its group", Config{Provider: GitLab, Repo: "fleet", Token: "t"}, "with its groups"},
		{"a repo name with a query", Config{Provider: Gitea, API: "https://gitea.msp.example/api/v1", Repo: "msp/fleet?x=1", Token: "t"}, "not a name"},
		{"a path climbing up", Config{Provider: GitLab, Repo: "msp/../admin", Token: "t"}, "not a name"},
		{"plain http off loopback", Config{Provider: GitHub, API: "http://github.msp.example/api/v3", Repo: "msp/fleet", Token: "t"}, "plain http would send the token in clear"},
		{"not a URL", Config{Provider: GitHub, API: "github.msp.example", Repo: "msp/fleet", Token: "t"}, "want the API's base URL"},
		{"credentials in the URL", Config{Provider: GitHub, API: "https://u:p@github.msp.example/api/v3", Repo: "msp/fleet", Token: "t"}, "want the API's base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check: %v, want an error mentioning %q", err, tt.wantErr)
			case err != nil && len(tt.cfg.Token) > 1 && strings.Contains(err.Error(), tt.cfg.Token):
				t.Errorf("Check's error shows the token: %v", err)
			}
		})
	}
}
