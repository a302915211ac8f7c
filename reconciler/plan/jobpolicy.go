package plan

import (
	"fmt"
	"maps"
	"slices"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// jobPolicy is what a job of ring r carries besides its updates: the
// reboot policy in full (with the client's time zone tz for its quiet
// hours), the reviewed scripts and the guarded processes.
func jobPolicy(r *schema.Ring, tz string) (*protocol.RebootPolicy, *protocol.JobHooks, *protocol.JobGuards) {
	o := &r.RebootOptions
	reboot := &protocol.RebootPolicy{Mode: string(r.Reboot), Deferrals: o.Deferrals, Timezone: tz}
	if r.RebootDeadline > 0 {
		reboot.Deadline = r.RebootDeadline.String()
	}
	if o.DeferFor > 0 {
		reboot.DeferFor = o.DeferFor.String()
	}
	for _, w := range o.Warnings {
		reboot.Warnings = append(reboot.Warnings, w.String())
	}
	if q := o.QuietHours; q != nil {
		reboot.QuietHours = &protocol.QuietHours{Start: clock(q.Start), End: clock(q.End)}
	}
	var hooks *protocol.JobHooks
	if h := r.Hooks; h != nil {
		hooks = &protocol.JobHooks{Pre: script(h.Pre), Post: script(h.Post), Timeout: h.Timeout.String()}
	}
	var guards *protocol.JobGuards
	if g := r.Guards; g != nil {
		guards = &protocol.JobGuards{Processes: g.Processes, Wait: g.Wait.String()}
	}
	return reboot, hooks, guards
}

func script(s *schema.Script) *protocol.Script {
	if s == nil {
		return nil
	}
	return &protocol.Script{Path: s.Path, Shell: s.Shell, Content: s.Content, SHA256: s.SHA256}
}

// clock formats minutes after midnight as "HH:MM".
func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// EmptyRing is a ring that no endpoint of its client is in.
type EmptyRing struct {
	Client string
	// Index is the ring's place in the client's rings.
	Index int
	Ring  *schema.Ring
	// Endpoints counts the client's endpoints in the snapshot; Selected
	// those the ring's select matches (all of them in earlier rings when
	// it is not 0).
	Endpoints, Selected int
}

// EmptyRings lists, for every client of fleet with endpoints in snap, the
// rings no endpoint is in (an endpoint is in the first ring whose select
// matches it), by client then ring order. `patchctl vet --state` warns
// about them: such a ring gets nothing and, with minEndpoints, holds the
// rings after it.
func EmptyRings(fleet *schema.Fleet, snap *protocol.Snapshot) []EmptyRing {
	byClient := map[string][]*protocol.Endpoint{}
	for _, ep := range snap.Endpoints {
		if ep != nil {
			byClient[ep.Client] = append(byClient[ep.Client], ep)
		}
	}
	var out []EmptyRing
	for _, id := range slices.Sorted(maps.Keys(fleet.Clients)) {
		eps := byClient[id]
		c := fleet.Clients[id]
		if len(eps) == 0 {
			continue
		}
		in := make([]int, len(c.Rings))
		selected := make([]int, len(c.Rings))
		for _, ep := range eps {
			first := true
			for k := range c.Rings {
				if selects(&c.Rings[k].Select, ep) {
					selected[k]++
					if first {
						in[k]++
						first = false
					}
				}
			}
		}
		for k := range c.Rings {
			if in[k] == 0 {
				out = append(out, EmptyRing{Client: id, Index: k, Ring: &c.Rings[k], Endpoints: len(eps), Selected: selected[k]})
			}
		}
	}
	return out
}
