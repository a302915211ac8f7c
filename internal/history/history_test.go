package history_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/internal/history"
	"github.com/patchline/patchline/internal/textsafe/textsafetest"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// fleetRepo builds, in dir, the fleet repository of testdata/history: one
// commit per step, each written over the previous working tree, with fixed
// authors and dates so hashes and golden files are stable. A step's file
// "-" deletes the path.
func fleetRepo(t testing.TB, dir string) {
	t.Helper()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 2, 15, 0, 0, 0, time.UTC)
	for i, s := range historySteps {
		for name, content := range s.files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if content == "-" {
				if err := os.RemoveAll(p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
			t.Fatal(err)
		}
		when := base.Add(time.Duration(i) * 26 * time.Hour)
		sig := &object.Signature{Name: s.author, Email: strings.ToLower(strings.Fields(s.author)[0]) + "@msp.example", When: when}
		if _, err := wt.Commit(s.message, &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true}); err != nil {
			t.Fatalf("commit %q: %v", s.message, err)
		}
	}
}

type step struct {
	author, message string
	files           map[string]string
}

const rootFleet = `package fleet

windows: {
	weeknights: {days: ["mon", "tue", "wed", "thu"], start: "22:00", duration: "4h"}
	weekend: {days: ["sat"], start: "01:00", duration: "6h"}
}
`

// acme renders acme's policy with the given pieces.
func acme(mode, soak, minAge, approve, extra string) string {
	return `package fleet

client: {id: "acme", name: "Acme Dental", timezone: "America/Chicago"}
mode: "` + mode + `"

rings: [
	{name: "canary", select: labels: ring: "canary", window: "weeknights", soak: "24h", minSuccess: 1.0, maxFailures: 0.0},
	{name: "pilot", select: labels: ring: "pilot", window: "weeknights", soak: "` + soak + `"},
	{name: "broad", select: {}, window: "weekend", reboot: "force", rebootDeadline: "24h"},
]

baseline: approve: [
	{name: "security", category: ["security", "critical"], minSeverity: "important", minAge: "` + minAge + `"},` + approve + `
]
` + extra
}

const sqlExclusion = `
exclusions: [
	{update: "KB5034441", select: hostnames: ["ACME-SQL01"], reason: "breaks the EHR vendor app", ticket: "PSA-1234", until: "2026-12-31"},
]
`

const chrome = `
	{name: "chrome", source: "winget", match: "Google.Chrome", minAge: "1d"},`

var historySteps = []step{
	{"Dana Lead", "Add README", map[string]string{"README.md": "# Fleet\n"}},
	{"Dana Lead", "Start the fleet with Acme Dental", map[string]string{
		"cue.mod/module.cue":      "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n",
		"fleet.cue":               rootFleet,
		"clients/acme/policy.cue": acme("report", "72h", "2d", "", ""),
	}},
	{"Sam Tech", "Merge pull request #42 from msp/exclude-sql\n\nHold KB5034441 on the SQL server", map[string]string{
		"clients/acme/policy.cue": acme("report", "72h", "2d", "", sqlExclusion),
	}},
	{"Sam Tech", "Enforce Acme and shorten the pilot soak (#43)", map[string]string{
		"clients/acme/policy.cue": acme("enforce", "48h", "2d", "", sqlExclusion),
	}},
	{"Kim Tech", "Approve security after a day\n\nSee merge request msp/fleet!7", map[string]string{
		"clients/acme/policy.cue": acme("enforce", "48h", "1d", chrome, sqlExclusion+`
baseline: require: [{id: "KB5035000"}]
windows: emergency: {days: ["sun"], start: "03:00", duration: "2h"}
`),
	}},
	{"Kim Tech", "Typo in the soak", map[string]string{
		"clients/acme/policy.cue": acme("enforce", "48 hours", "1d", chrome, sqlExclusion),
	}},
	{"Dana Lead", "Year-end freeze, lift the SQL hold, onboard Globex (#44)", map[string]string{
		"clients/acme/policy.cue": acme("enforce", "48h", "1d", chrome, `
staleAfter: "3d"
sla: {critical: "14d", important: "30d", moderate: "90d"}
windows: emergency: {days: ["sun"], start: "03:00", duration: "3h"}
windows: patchTuesday: {monthly: {weekday: "tue", week: 2, offsetDays: 3}, start: "22:00", duration: "6h"}
freezes: [{select: {}, from: "2026-12-28", until: "2027-01-04", reason: "year-end close"}]
resume: [{update: "KB5035000", ring: "pilot", after: "2026-11-20T12:00:00Z"}]
`),
		"clients/globex/policy.cue": `package fleet

client: {id: "globex", name: "Globex Logistics", timezone: "Europe/Berlin"}
rings: [{name: "all", select: {}, window: "weekend"}]
baseline: approve: [{name: "exploited", knownExploited: true}]
`,
	}},
	{"Dana Lead", "Move the README", map[string]string{"README.md": "-", "docs/README.md": "# Fleet\n"}},
	{"Sam Tech", "Offboard Globex", map[string]string{"clients/globex": "-"}},
}

func buildRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fleetRepo(t, dir)
	return dir
}

func TestHistory(t *testing.T) {
	dir := buildRepo(t)
	since := time.Date(2026, 11, 7, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, format string
		opts         history.Options
	}{
		{"every change.txt", "text", history.Options{}},
		{"every change.md", "markdown", history.Options{}},
		{"every change.json", "json", history.Options{}},
		{"only globex.txt", "text", history.Options{Client: "globex"}},
		{"what touched KB5034441.txt", "text", history.Options{Update: "KB5034441"}},
		{"what touched a chrome version.txt", "text", history.Options{Update: "Google.Chrome@131.0.6778.86"}},
		{"since November 7.txt", "text", history.Options{Since: since}},
		{"an update nothing names.txt", "text", history.Options{Update: "KB0000000"}},
	}
	l := loader.New(loader.Options{Now: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := history.Build(context.Background(), l, dir, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := h.Write(&buf, tt.format); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "history/"+strings.ReplaceAll(tt.name, " ", "-")), buf.Bytes())
		})
	}
}

// TestHistoryFacts checks the facts an auditor relies on, independently of
// the golden files' wording.
func TestHistoryFacts(t *testing.T) {
	dir := buildRepo(t)
	h, err := history.Build(context.Background(), loader.New(loader.Options{}), dir, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, c := range h.Commits {
		subjects = append(subjects, c.Subject)
	}
	// Newest first; the README commits change no policy and are left out.
	want := []string{
		"Offboard Globex",
		"Year-end freeze, lift the SQL hold, onboard Globex (#44)",
		"Typo in the soak",
		"Approve security after a day",
		"Enforce Acme and shorten the pilot soak (#43)",
		"Merge pull request #42 from msp/exclude-sql",
		"Start the fleet with Acme Dental",
	}
	if diff := cmp.Diff(want, subjects); diff != "" {
		t.Fatalf("commits (-want +got):\n%s", diff)
	}
	prs := map[string]string{}
	for _, c := range h.Commits {
		prs[c.Subject] = c.PR
	}
	for subject, pr := range map[string]string{
		"Merge pull request #42 from msp/exclude-sql":              "#42",
		"Enforce Acme and shorten the pilot soak (#43)":            "#43",
		"Approve security after a day":                             "msp/fleet!7",
		"Typo in the soak":                                         "",
		"Year-end freeze, lift the SQL hold, onboard Globex (#44)": "#44",
	} {
		if prs[subject] != pr {
			t.Errorf("%q: PR %q, want %q", subject, prs[subject], pr)
		}
	}
	typo := h.Commits[2]
	if len(typo.Clients) != 1 || typo.Clients[0].Changes[0].Op != history.Refused ||
		!strings.HasPrefix(typo.Clients[0].Changes[0].Text, "refused by the controller: clients/acme/policy.cue:") {
		t.Errorf("a commit that does not load shows as refused with its first problem; got %+v", typo.Clients)
	}
	// After the refused commit the next one is compared with the last good
	// policy: the exclusion is lifted there, not in the refused commit.
	var lifted bool
	for _, ch := range h.Commits[1].Clients[0].Changes {
		lifted = lifted || ch.Op == history.Removed && ch.Kind == "exclusion"
	}
	if !lifted {
		t.Errorf("the exclusion removal is not in the commit after the refused one: %+v", h.Commits[1].Clients)
	}
}

func TestPullRequest(t *testing.T) {
	tests := []struct{ name, message, want string }{
		{"GitHub merge commit", "Merge pull request #42 from msp/exclude-sql\n\nHold it", "#42"},
		{"GitHub squash merge", "Hold KB5034441 on the SQL server (#7)\n\n* first", "#7"},
		{"GitLab merge commit", "Merge branch 'hold' into 'main'\n\nHold it\n\nSee merge request msp/fleets/acme!15", "msp/fleets/acme!15"},
		{"number in the middle of the subject", "Fix (#3) typo in reason", ""},
		{"direct push", "Shorten the pilot soak", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := history.PullRequest(tt.message); got != tt.want {
				t.Errorf("PullRequest(%q) = %q, want %q", tt.message, got, tt.want)
			}
		})
	}
}

func TestHistoryNotARepo(t *testing.T) {
	_, err := history.Build(context.Background(), loader.New(loader.Options{}), t.TempDir(), history.Options{})
	if err == nil || !strings.Contains(err.Error(), "history: open") {
		t.Fatalf("err = %v, want an error saying the repository does not open", err)
	}
}

func TestDiffKnownExploitedSLA(t *testing.T) {
	cisa := &schema.ExploitedSLA{CISA: true}
	days := func(n int) *schema.ExploitedSLA {
		return &schema.ExploitedSLA{Within: time.Duration(n) * 24 * time.Hour}
	}
	tests := []struct {
		name     string
		from, to *schema.ExploitedSLA
		want     []string
	}{
		{"set to CISA's due dates", nil, cisa, []string{"+ sla knownExploited cisa"}},
		{"from CISA's due dates to 14 days", cisa, days(14), []string{"~ sla knownExploited: cisa → 14d"}},
		{"dropped", days(7), nil, []string{"- sla knownExploited 7d"}},
		{"unchanged", days(7), days(7), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &schema.Client{ID: "acme", KnownExploitedSLA: tt.from}
			b := &schema.Client{ID: "acme", KnownExploitedSLA: tt.to}
			var got []string
			for _, ch := range history.Diff(a, b) {
				got = append(got, ch.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	day := func(s string) time.Time {
		d, err := time.ParseInLocation(time.DateOnly, s, chicago)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := func() *schema.Client {
		return &schema.Client{
			ID: "acme", Name: "Acme Dental", Timezone: "America/Chicago", Location: chicago, Mode: schema.ModeEnforce,
			Rings: []schema.Ring{
				{Name: "canary", Window: "weeknights", Soak: 24 * time.Hour, MinSuccess: 1},
				{Name: "broad", Window: "weekend", Soak: 24 * time.Hour, MinSuccess: 0.9, MaxFailures: 0.1},
			},
			Baseline: schema.Baseline{Require: []schema.Requirement{{Source: "apt", Match: "openssl", MinVersion: "3.0.13"}}},
			Exclusions: []schema.Exclusion{{Update: "KB5034441", Select: schema.Selector{Labels: map[string]string{"role": "sql"}},
				Reason: "breaks the EHR vendor app", Until: day("2027-01-01")}},
			Freezes:  []schema.Freeze{{From: day("2026-12-28"), Until: day("2027-01-05"), Reason: "year-end close"}},
			Rollback: []schema.Rollback{{Update: "KB5036893", Reason: "boot loop on the X-ray PCs"}},
		}
	}
	tests := []struct {
		name   string
		change func(c *schema.Client)
		want   []string
	}{
		{"nothing but positions moved", func(c *schema.Client) { c.Rings[0].Pos = schema.Pos{File: "x.cue", Line: 9} }, nil},
		{"client renamed and moved to another zone", func(c *schema.Client) { c.Name, c.Timezone = "Acme Dental Group", "America/Denver" },
			[]string{`~ name "Acme Dental" → "Acme Dental Group"`, "~ timezone America/Chicago → America/Denver"}},
		{"rings swapped", func(c *schema.Client) { c.Rings[0], c.Rings[1] = c.Rings[1], c.Rings[0] },
			[]string{"~ ring order canary, broad → broad, canary"}},
		{"canary ring dropped", func(c *schema.Client) { c.Rings = c.Rings[1:] },
			[]string{"- ring canary: select every endpoint, window weeknights, soak 24h, minSuccess 1, maxFailures 0"}},
		{"ring gets a concurrency cap and a reboot deadline", func(c *schema.Client) {
			c.Rings[1].MaxConcurrent, c.Rings[1].RebootDeadline = 25, 4*time.Hour
		}, []string{"~ ring broad: maxConcurrent (none) → 25, rebootDeadline (none) → 4h"}},
		{"exclusion extended with a ticket", func(c *schema.Client) {
			c.Exclusions[0].Until, c.Exclusions[0].Ticket = day("2027-02-01"), "PSA-1300"
		}, []string{"~ exclusion KB5034441 on labels role=sql: until 2026-12-31 → 2027-01-31, ticket (none) → PSA-1300"}},
		{"exclusion moved to other endpoints", func(c *schema.Client) { c.Exclusions[0].Select = schema.Selector{Hostnames: []string{"ACME-SQL01"}} },
			[]string{
				"- exclusion KB5034441 on labels role=sql until 2026-12-31 (reason: breaks the EHR vendor app)",
				"+ exclusion KB5034441 on hostnames ACME-SQL01 until 2026-12-31 (reason: breaks the EHR vendor app)",
			}},
		{"openssl floor raised", func(c *schema.Client) { c.Baseline.Require[0].MinVersion = "3.0.15" },
			[]string{"~ requirement apt openssl: minVersion 3.0.13 → 3.0.15"}},
		{"freeze shortened", func(c *schema.Client) { c.Freezes[0].Until = day("2027-01-03") },
			[]string{"~ freeze on every endpoint from 2026-12-28: until 2027-01-04 → 2027-01-02"}},
		{"exclusion until a time of day", func(c *schema.Client) { c.Exclusions[0].Until = day("2026-12-31").Add(15 * time.Hour) },
			[]string{"~ exclusion KB5034441 on labels role=sql: until 2026-12-31 → 2026-12-31 15:00 CST"}},
		{"approve rules by EPSS and by CVE", func(c *schema.Client) {
			c.Baseline.Approve = []schema.ApproveRule{
				{Name: "likely-exploited", MinEPSS: 0.5},
				{Name: "regresshion", CVE: []string{"CVE-2024-6387", "CVE-2024-6409"}},
			}
		}, []string{"+ approve rule likely-exploited: minEPSS 0.5", "+ approve rule regresshion: cve CVE-2024-6387,CVE-2024-6409"}},
		{"rollback of an update on the canaries", func(c *schema.Client) {
			c.Rollback = append(c.Rollback, schema.Rollback{Update: "openssl@3.0.15-1~deb12u1", Select: schema.Selector{Labels: map[string]string{"ring": "canary"}},
				Reason: "breaks the imaging bridge", Ticket: "PSA-1400"})
		}, []string{"+ rollback openssl@3.0.15-1~deb12u1 on labels ring=canary (reason: breaks the imaging bridge, ticket PSA-1400)"}},
		{"rollback gets a ticket", func(c *schema.Client) { c.Rollback[0].Ticket = "PSA-1401" },
			[]string{"~ rollback KB5036893 on every endpoint: ticket (none) → PSA-1401"}},
		{"rollback lifted", func(c *schema.Client) { c.Rollback = nil },
			[]string{"- rollback KB5036893 on every endpoint (reason: boot loop on the X-ray PCs)"}},
		{"emergency rollout", func(c *schema.Client) {
			c.Emergency = []schema.Emergency{{Update: "KB5099999", Reason: "CVE-2026-1234 actively exploited", Until: day("2026-12-11"), SkipSoak: true, IgnoreWindows: true}}
		}, []string{"+ emergency KB5099999 skips soaks, ignores windows until 2026-12-10 (reason: CVE-2026-1234 actively exploited)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base()
			tt.change(b)
			var got []string
			for _, ch := range history.Diff(base(), b) {
				got = append(got, ch.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
		})
	}
	lifted := base()
	lifted.Rollback = nil
	if got := history.Diff(base(), lifted); len(got) != 1 || !got[0].Names("KB5036893") || got[0].Names("KB5036894") {
		t.Errorf("lifted rollback: %v; want one change that names KB5036893 only (history --update)", got)
	}
	if got := history.Diff(base(), nil); len(got) != 1 || got[0].String() != `- client acme "Acme Dental"` {
		t.Errorf("removed client: %v", got)
	}
}

// TestHistoryShowsCommitTextAsText: anyone who can push writes commit
// subjects and author names; a terminal escape or Markdown in them is
// shown as text, never obeyed.
func TestHistoryShowsCommitTextAsText(t *testing.T) {
	h := &history.History{Commits: []history.Commit{{
		Hash: "699202864ef5699202864ef5", Author: "Mallory\x1b]0;pwned\x07", Email: "m@example.com",
		Date: time.Date(2026, 11, 9, 3, 0, 0, 0, time.UTC), Subject: "Fix\x1b[2J **now** <!-- hide", PR: "#44",
		Clients: []history.ClientChanges{{Client: "acme\u202e", Changes: []history.Change{{Op: "+", Text: "exclusion x\r\n[y](http://evil.example)"}}}},
	}}}
	for _, format := range []string{history.FormatText, history.FormatMarkdown} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := h.Write(&buf, format); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if r, i := textsafetest.RawControl(out); i >= 0 {
				t.Errorf("output holds %U at byte %d:\n%s", r, i, out)
			}
			if !strings.Contains(out, `x1b[2J`) && !strings.Contains(out, `x1b\[2J`) {
				t.Errorf("output does not show the escape as text:\n%s", out)
			}
			if format == history.FormatMarkdown {
				for _, bad := range []string{"<!--", "**now**", " [y]"} {
					if strings.Contains(out, bad) {
						t.Errorf("output holds %q unescaped:\n%s", bad, out)
					}
				}
			}
		})
	}
}
