package commitstatus

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
)

// State is a status's verdict.
type State int

// The states patchd posts. It posts no pending state: a revision is
// judged within seconds of its fetch, and a status that waits for
// nothing would only be noise.
const (
	Success State = iota
	Failure
)

func (s State) String() string {
	if s == Success {
		return "success"
	}
	return "failure"
}

// Status is one commit status: Revision's status for Context.
type Status struct {
	// Revision is the commit's full hash.
	Revision string
	// Context names the status among others on the commit
	// (ContextApply, ...); GitLab calls it name.
	Context     string
	State       State
	Description string
}

// key is what a later status replaces: the forge shows the latest status
// of each context on each commit.
func (s Status) key() string { return s.Revision + " " + s.Context }

// The contexts patchd posts. One status sums up the commit
// (ContextApply); only the clients that need a technician get their own
// (ContextApply + "/" + client for a refused client, at most
// maxClientStatuses a commit; ContextRollout + "/" + client for a
// client's halts), so a commit of a fleet of 100 clients gets a handful
// of statuses, not 100, and the pull request's checks list stays
// readable.
const (
	ContextApply   = "patchline/apply"
	ContextRollout = "patchline/rollout"
)

// maxClientStatuses bounds the per-client statuses of one commit; the
// commit's own status counts every refused client.
const maxClientStatuses = 5

// maxDescription is the longest description posted, in characters:
// GitHub refuses longer ones, and the others show about as much.
const maxDescription = 140

// appliedStatuses are the statuses of a revision applied to clients,
// except those refused (client → problems), which keep their last good
// revision.
func appliedStatuses(revision string, clients []string, refused map[string][]string) []Status {
	if len(refused) == 0 {
		return []Status{{Revision: revision, Context: ContextApply, State: Success, Description: "applied to " + count(len(clients), "client")}}
	}
	ids := slices.Sorted(maps.Keys(refused))
	total := len(ids)
	for _, id := range clients {
		if refused[id] == nil {
			total++
		}
	}
	out := []Status{{
		Revision: revision, Context: ContextApply, State: Failure,
		Description: describe(fmt.Sprintf("%d of %d clients refused", len(ids), total), firstOf(refused[ids[0]])),
	}}
	for _, id := range ids[:min(len(ids), maxClientStatuses)] {
		out = append(out, refusedStatus(revision, id, "invalid", refused[id]))
	}
	return out
}

// refusedStatus is the status of a revision refused for client ("" for
// the whole commit) for reason (invalid, verify), with its problems.
func refusedStatus(revision, client, reason string, problems []string) Status {
	context := ContextApply
	if client != "" {
		context += "/" + client
	}
	head := "refused"
	if reason == "verify" {
		head = "refused by the signature and history check"
	}
	if len(problems) > 1 {
		head += fmt.Sprintf(" (%d problems)", len(problems))
	}
	return Status{Revision: revision, Context: context, State: Failure, Description: describe(head, firstOf(problems))}
}

// haltStatus is the status of client's halted rollouts at revision, the
// revision the client runs when they change; no halt is a success (a
// commit resumed them).
func haltStatus(revision, client string, halts []protocol.Halt) Status {
	s := Status{Revision: revision, Context: ContextRollout + "/" + client, State: Success, Description: "no rollout halted"}
	if len(halts) == 0 {
		return s
	}
	halts = slices.Clone(halts)
	slices.SortFunc(halts, func(a, b protocol.Halt) int {
		return strings.Compare(a.Update+"\x00"+a.Ring, b.Update+"\x00"+b.Ring)
	})
	h := halts[0]
	what := h.Reason
	if what == "" {
		what = "halted in ring " + h.Ring
	}
	head := ""
	if len(halts) > 1 {
		head = fmt.Sprintf("%d rollouts halted", len(halts))
	}
	s.State, s.Description = Failure, describe(head, h.Update+" "+what)
	return s
}

// firstOf is the first problem, "" for none.
func firstOf(problems []string) string {
	if len(problems) == 0 {
		return ""
	}
	return problems[0]
}

// describe joins head and detail (text from the fleet repo or an
// endpoint) into a description: one line, escaped as patchctl prints it,
// at most maxDescription characters.
func describe(head, detail string) string {
	d := oneLine(detail)
	switch {
	case head == "":
	case d == "":
		d = head
	default:
		d = head + ": " + d
	}
	return truncate(d, maxDescription)
}

// oneLine makes s one line of visible characters: each run of white
// space (line breaks included) becomes one space, and what is left that
// a reader must not be handed raw is escaped (textsafe.Terminal).
func oneLine(s string) string {
	return textsafe.Terminal(strings.Join(strings.Fields(s), " "))
}

// truncate cuts s to at most n characters, never inside one, marking the
// cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, kept := 0, 0
	for kept < n-1 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		kept++
	}
	return strings.TrimRight(s[:i], " ") + "…"
}

// count is "1 client", "12 clients".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
