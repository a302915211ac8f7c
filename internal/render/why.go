package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/patchline/patchline/reconciler/plan"
)

// Blame names the commit that last changed a rule's line, for `why`.
type Blame func(rule string) string

// Why writes the chain of facts behind one decision, as `patchctl why`
// prints it. blame, when not nil, adds the commit that last changed each
// cited line.
func Why(w io.Writer, x *plan.Explanation, blame Blame) error {
	p := &printer{w: w}
	cite := func(rule string) string {
		if rule == "" {
			return ""
		}
		s := " at " + rule
		if blame != nil {
			if b := blame(rule); b != "" {
				s += "\n              last changed by " + b
			}
		}
		return s
	}
	p.f("%s / %s: %s\n", x.Endpoint, x.Update, x.Decision.Decision)
	p.f("  revision    %s, planned at %s\n", shortRev(x.Revision), stamp(x.Now))
	if !x.KnownClient {
		p.f("  client      %s is not in the fleet repo: no policy applies, no job is sent\n", x.Client)
		return p.err
	}
	p.f("  client      %s\n", x.Client)
	if x.Stale {
		p.f("  stale       the endpoint has not reported within staleAfter; it does not count towards ring progress\n")
	}
	if x.Ring != nil {
		p.f("  ring        %s (%s)%s\n", x.Ring.Name, x.Ring.Detail, cite(x.Ring.Rule))
	} else {
		p.f("  ring        none: no ring selects this endpoint\n")
	}
	switch {
	case x.Desire == nil:
		p.f("  desired     no: no approve rule or requirement matches the update\n")
	case !x.Desired:
		at := ""
		if x.Desire.At != nil {
			at = " from " + stamp(*x.Desire.At)
		}
		p.f("  desired     not yet: %s %q approves it%s%s\n", x.Desire.Kind, x.Desire.Name, at, cite(x.Desire.Rule))
	default:
		p.f("  desired     yes: %s %q%s%s\n", x.Desire.Kind, x.Desire.Name, detail(x.Desire.Detail), cite(x.Desire.Rule))
	}
	if x.Exclusion != nil {
		p.f("  exclusion   %s: %s%s\n", x.Exclusion.Name, x.Exclusion.Detail, cite(x.Exclusion.Rule))
	}
	if x.Freeze != nil {
		until := ""
		if x.Freeze.At != nil {
			until = " until " + stamp(*x.Freeze.At)
		}
		p.f("  freeze      %s%s%s\n", x.Freeze.Detail, until, cite(x.Freeze.Rule))
	}
	for i, r := range x.Rollouts {
		label := "  rollout    "
		if i > 0 {
			label = "             "
		}
		var facts []string
		facts = append(facts, fmt.Sprintf("%d/%d succeeded", r.Succeeded, r.Counted))
		if r.Failed > 0 {
			facts = append(facts, fmt.Sprintf("%d failed", r.Failed))
		}
		if r.EligibleAt != nil {
			facts = append(facts, "may start "+stamp(*r.EligibleAt))
		}
		if r.PassedAt != nil {
			facts = append(facts, "passed "+stamp(*r.PassedAt))
		}
		if r.Reason != "" {
			facts = append(facts, r.Reason)
		}
		p.f("%s %-8s %-11s %s\n", label, r.Ring, r.State, strings.Join(facts, "; "))
	}
	if x.FailedAttempts > 0 {
		p.f("  attempts    %d failed attempt(s) not forgiven by a resume entry\n", x.FailedAttempts)
	}
	if x.Window != nil {
		state := "closed"
		if x.Window.Open && x.Window.Closes != nil {
			state = "open until " + stamp(*x.Window.Closes)
		}
		if x.Window.NextOpen != nil {
			state += ", next opens " + stamp(*x.Window.NextOpen)
		}
		p.f("  window      %s: %s%s\n", x.Window.Name, state, cite(x.Window.Rule))
	}
	d := x.Decision
	p.f("  decision    %s", d.Decision)
	if d.Reason != "" {
		p.f(": %s", d.Reason)
	}
	if d.EligibleAt != nil {
		p.f(" (eligible %s)", stamp(*d.EligibleAt))
	}
	p.f("%s\n", cite(d.Rule))
	return p.err
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
