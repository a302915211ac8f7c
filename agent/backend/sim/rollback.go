package sim

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/agent/notify"
	"github.com/patchline/patchline/protocol"
)

// Rollback "removes" each update: one the simulation installed returns
// the package to the version before it (a Windows KB to not installed);
// a KB the machine came with is uninstalled; a package version the
// machine came with has no older version to return to.
func (b *Backend) Rollback(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	byID := map[string]*protocol.Update{}
	for _, c := range b.catalogue {
		byID[c.ID] = c
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	results := make([]run.Result, 0, len(updates))
	for _, u := range updates {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		res := run.Result{Update: u.ID}
		c, known := byID[u.ID]
		_, done := b.st.Installed[u.ID]
		switch {
		case !known:
			res.Error = fmt.Sprintf("simulated endpoint has no update %q", u.ID)
		case done:
			delete(b.st.Installed, u.ID)
			res.Succeeded, res.Output = true, "simulated: rolled back "+u.ID
			if c.InstalledVersion != "" && c.InstalledVersion != c.Version {
				res.Output += " to " + c.Name + " " + c.InstalledVersion
			}
		case c.Installed && b.source == "windows-update" && b.st.Removed[u.ID].IsZero():
			b.st.Removed[u.ID] = b.opts.Now().UTC()
			res.Succeeded, res.Output = true, "simulated: uninstalled "+u.ID
		case c.Installed && b.source == "windows-update":
			res.Error = fmt.Sprintf("simulated: %s is not installed", u.ID)
		case c.Installed:
			res.Error = fmt.Sprintf("cannot roll back %s %s: no older version available", c.Name, c.Version)
		default:
			res.Error = fmt.Sprintf("simulated: %s is not installed", u.ID)
		}
		if res.Succeeded {
			b.st.RebootPending = b.st.RebootPending || c.RebootRequired
		}
		results = append(results, res)
	}
	if err := b.save(); err != nil {
		return results, err
	}
	return results, nil
}

// Prompt is a reboot prompt or notice the simulated endpoint recorded
// instead of showing it.
type Prompt struct {
	At      time.Time `json:"at"`
	Title   string    `json:"title"`
	Message string    `json:"message"`
	// Answer is the simulated user's answer; empty for a notice.
	Answer notify.Answer `json:"answer,omitempty"`
}

// Notify records a notice.
func (b *Backend) Notify(ctx context.Context, title, message string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Prompts = append(b.st.Prompts, Prompt{At: b.opts.Now().UTC(), Title: title, Message: message})
	return b.save()
}

// Ask records a prompt and answers it as a simulated user would, by a
// rule of the seed and the prompt's number alone (so a rerun answers the
// same): postpone three times in four, restart now otherwise.
func (b *Backend) Ask(ctx context.Context, p notify.Prompt) (notify.Answer, error) {
	if err := ctx.Err(); err != nil {
		return notify.NoAnswer, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/prompt/%d", b.opts.Seed, len(b.st.Prompts))
	answer := notify.Postpone
	if h.Sum64()%4 == 0 {
		answer = notify.RestartNow
	}
	b.st.Prompts = append(b.st.Prompts, Prompt{At: b.opts.Now().UTC(), Title: p.Title, Message: p.Message, Answer: answer})
	return answer, b.save()
}

// Reboot simulates a reboot: the pending flag clears.
func (b *Backend) Reboot(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Reboots++
	b.st.RebootPending = false
	return b.save()
}

// Prompts returns the prompts and notices recorded so far.
func (b *Backend) Prompts() []Prompt {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Prompt(nil), b.st.Prompts...)
}

// Reboots returns how many times the simulated machine rebooted.
func (b *Backend) Reboots() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.Reboots
}
