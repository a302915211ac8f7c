package plan

import (
	"fmt"

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
