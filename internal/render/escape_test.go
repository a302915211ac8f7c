package render

import (
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/textsafe/textsafetest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

// texts are the outside texts a rendering shows: from endpoints (ids,
// reasons quoting them) and from the fleet repo (client and ring names,
// rules).
type texts struct {
	endpoint, client, ring, update, reason, rule string
}

var plain = texts{endpoint: "acme-ws-001", client: "acme", ring: "canary", update: "KB5044284",
	reason: "approved by rule \"security\"", rule: "clients/acme/policy.cue:12"}

var planned = time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)

// fixturePlan plans two jobs: one with x's texts, then a plain one that a
// hostile text must not hide.
func fixturePlan(x texts) *plan.Result {
	return &plan.Result{
		Revision: "55b97a61c9560123", Now: planned,
		Summary: map[plan.Decision]int{plan.Missing: 3, plan.Excluded: 1},
		Jobs: []plan.Job{
			{Endpoint: x.endpoint, Client: x.client, Ring: x.ring, Updates: []string{x.update, "KB2"}, NotAfter: planned.Add(4 * time.Hour), Reboot: "if-required"},
			{Endpoint: "acme-ws-002", Client: "acme", Ring: "pilot", Updates: []string{"KB3"}, NotAfter: planned.Add(4 * time.Hour), Reboot: "never"},
		},
		Decisions: []plan.PairDecision{
			{Endpoint: x.endpoint, Client: x.client, Ring: x.ring, Update: x.update, Decision: plan.Missing, Rule: x.rule, Reason: x.reason},
			{Endpoint: "acme-ws-002", Client: "acme", Ring: "pilot", Update: "KB3", Decision: plan.Missing, Rule: "fleet.cue:17", Reason: "approved"},
		},
	}
}

// fixtureChange is the change from a plan with no jobs to fixturePlan.
func fixtureChange(x texts) *Change {
	base := &plan.Result{Revision: "a508889f40c70123", Now: planned, Summary: map[plan.Decision]int{}}
	return Diff(base, fixturePlan(x))
}

func fixtureWhy(x texts) *plan.Explanation {
	closes := planned.Add(4 * time.Hour)
	return &plan.Explanation{
		Endpoint: x.endpoint, Client: x.client, Update: x.update, Revision: "55b97a61c9560123", Now: planned, KnownClient: true,
		Ring:      &plan.Citation{Kind: "ring", Name: x.ring, Rule: x.rule, Detail: "selects ring=" + x.ring},
		Desire:    &plan.Citation{Kind: "approve", Name: x.reason, Rule: x.rule, Detail: x.reason},
		Desired:   true,
		Evidence:  &plan.Evidence{CVEs: &plan.CVEEvidence{Reported: []string{x.update}}},
		Exclusion: &plan.Citation{Kind: "exclusion", Name: x.ring, Rule: x.rule, Detail: x.reason},
		Rollouts:  []plan.Rollout{{Client: x.client, Update: x.update, Ring: x.ring, Counted: 2, Succeeded: 1, State: plan.RolloutInProgress, Reason: x.reason}},
		Window:    &plan.WindowState{Name: x.ring, Rule: x.rule, Open: true, Closes: &closes},
		Decision:  plan.PairDecision{Endpoint: x.endpoint, Client: x.client, Update: x.update, Decision: plan.Excluded, Rule: x.rule, Reason: x.reason},
	}
}

func fixtureStatus(x texts) *protocol.Status {
	return &protocol.Status{
		Head:        "0123456789abcdef0123",
		SourceError: x.reason,
		Refused:     &protocol.Refusal{Revision: "fedcba9876543210", Client: x.client, Reason: x.reason, Problems: []string{x.rule + ": " + x.reason}, At: planned},
		Pending:     &protocol.PendingRevision{Revision: "0123456789abcdef0123", Error: "could not record: " + x.reason, Since: planned, Attempts: 2, NextAttempt: planned},
		// A store error may quote an endpoint id.
		Store: protocol.StoreHealth{Failing: true, FailingSince: planned, LastError: "report of endpoint " + x.endpoint + ": database or disk is full", LastErrorOp: "report", LastErrorAt: planned},
		Clients: []protocol.ClientStatus{
			{Client: x.client, Known: true, Endpoints: 1, Halted: []protocol.Halt{{Update: x.update, Ring: x.ring, Reason: x.reason}}, Error: x.reason, ErrorAt: planned},
			{Client: "globex", Known: true, Endpoints: 2},
			{Client: x.client + "-2", Revision: "bbbbbbbbbbbbbbbb", Known: true, Refused: []string{x.rule + ": " + x.reason}},
		},
	}
}

// renderText writes every text rendering of x's fixtures.
func renderText(t *testing.T, x texts) map[string]string {
	t.Helper()
	out := map[string]*strings.Builder{"plan": {}, "change": {}, "why": {}, "status": {}}
	blame := func(rule string) string { return "4f1c2e9 " + x.reason }
	for name, err := range map[string]error{
		"plan":   Plan(out["plan"], Text, fixturePlan(x), false),
		"change": WriteChange(out["change"], Text, fixtureChange(x)),
		"why":    Why(out["why"], fixtureWhy(x), blame),
		"status": Status(out["status"], fixtureStatus(x)),
	} {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	got := make(map[string]string, len(out))
	for name, b := range out {
		got[name] = b.String()
	}
	return got
}

// renderMarkdown writes every Markdown rendering of x's fixtures.
func renderMarkdown(t *testing.T, x texts) map[string]string {
	t.Helper()
	var planMD, changeMD strings.Builder
	if err := Plan(&planMD, Markdown, fixturePlan(x), false); err != nil {
		t.Fatal(err)
	}
	if err := WriteChange(&changeMD, Markdown, fixtureChange(x)); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"plan": planMD.String(), "change": changeMD.String()}
}

// TestMarkdownKeepsHostileTextInItsCell: an update id holding a newline,
// a cell separator, emphasis and an HTML comment opener stays inside its
// cell of the pull-request comment, and the rows after it stay visible.
func TestMarkdownKeepsHostileTextInItsCell(t *testing.T) {
	hostile := plain
	hostile.update = "KB1 |\n| **pwned** | <!-- "
	hostile.reason = "see <!-- | `x` [link](http://evil.example)"
	for name, md := range renderMarkdown(t, hostile) {
		t.Run(name, func(t *testing.T) {
			rows := textsafetest.TableRows(t, md)
			var after bool
			for _, row := range rows {
				if strings.Contains(row, "acme-ws-002") {
					after = true
				}
			}
			if !after {
				t.Errorf("no table row shows acme-ws-002, the job after the hostile id:\n%s", md)
			}
			for _, bad := range []string{"<!--", "**pwned**", " [link]"} {
				if strings.Contains(md, bad) {
					t.Errorf("output holds %q unescaped:\n%s", bad, md)
				}
			}
			if r, i := textsafetest.RawControl(md); i >= 0 {
				t.Errorf("output holds %U at byte %d", r, i)
			}
			if !strings.Contains(md, `KB1 \|\\x0a\| \*\*pwned\*\* \| &lt;!--`) {
				t.Errorf("output does not show the hostile id as text:\n%s", md)
			}
		})
	}
}

// TestTextOutputShowsTerminalEscapesAsText: terminal escapes in endpoint
// and update ids (and in anything else a plan, why or status prints)
// never reach the terminal; they are shown as \x1b.
func TestTextOutputShowsTerminalEscapesAsText(t *testing.T) {
	hostile := texts{
		endpoint: "acme-ws-001\x1b]0;pwned\x07", client: "acme\x1b[8m", ring: "canary\r",
		update: "KB1\x1b[2J\x1b[H", reason: "approved\u009b31m\x9b\u202e", rule: "clients/acme/policy.cue:12\n",
	}
	for name, out := range renderText(t, hostile) {
		t.Run(name, func(t *testing.T) {
			if r, i := textsafetest.RawControl(out); i >= 0 {
				t.Errorf("output holds %U at byte %d:\n%s", r, i, out)
			}
			if !strings.Contains(out, `\x1b`) {
				t.Errorf("output does not show the escape as text:\n%s", out)
			}
		})
	}
}

// fuzzTexts builds texts from fuzz input, for both fuzz targets. Each is
// kept from being empty, which would leave out a line by design.
func fuzzTexts(endpoint, update, reason string) texts {
	endpoint, update, reason = "e"+endpoint, "u"+update, "r"+reason
	return texts{endpoint: endpoint, client: reason, ring: update, update: update, reason: reason, rule: endpoint}
}

// FuzzRenderText: whatever an endpoint reports, text output holds no
// control character and has as many lines as with plain text.
func FuzzRenderText(f *testing.F) {
	f.Add("acme-ws-001", "KB5044284", "approved")
	f.Add("acme-ws-001\x1b]0;pwned\x07", "KB1\x1b[2J", "a\r\nb\tc")
	f.Add("ws\u202e1", "KB\u200b1", "\xff\xfe\x00")
	f.Add("", "a\u2028b", "\\x1b")
	f.Fuzz(func(t *testing.T, endpoint, update, reason string) {
		want := renderText(t, plain)
		for name, out := range renderText(t, fuzzTexts(endpoint, update, reason)) {
			if r, i := textsafetest.RawControl(out); i >= 0 {
				t.Fatalf("%s: output holds %U at byte %d:\n%s", name, r, i, out)
			}
			if got, want := strings.Count(out, "\n"), strings.Count(want[name], "\n"); got != want {
				t.Fatalf("%s: %d lines, %d with plain text:\n%s", name, got, want, out)
			}
		}
	})
}

// FuzzRenderMarkdown: whatever an endpoint reports, every row of every
// Markdown table keeps the cells of its header, the output holds no
// control character and has as many lines as with plain text.
func FuzzRenderMarkdown(f *testing.F) {
	f.Add("acme-ws-001", "KB5044284", "approved")
	f.Add("acme-ws-001", "KB1 |\n| **pwned** | <!-- ", "see <!-- | `x`")
	f.Add("a\\|b", "``` | ```", "[x](http://evil.example) ![i](x) <b>")
	f.Add("ws\u202e1", "KB\u200b1\r", "\xff\x00 &lt; # ~~s~~ $x$ _e_")
	f.Fuzz(func(t *testing.T, endpoint, update, reason string) {
		want := renderMarkdown(t, plain)
		for name, md := range renderMarkdown(t, fuzzTexts(endpoint, update, reason)) {
			if r, i := textsafetest.RawControl(md); i >= 0 {
				t.Fatalf("%s: output holds %U at byte %d:\n%s", name, r, i, md)
			}
			if got, want := strings.Count(md, "\n"), strings.Count(want[name], "\n"); got != want {
				t.Fatalf("%s: %d lines, %d with plain text:\n%s", name, got, want, md)
			}
			textsafetest.TableRows(t, md)
		}
	})
}
