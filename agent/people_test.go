package agent

import (
	"context"
	"sync"
	"time"

	"github.com/patchline/patchline/agent/notify"
)

// people stands for the users at an endpoint: it records every notice
// and prompt the agent shows, with the fake clock's time, and answers each
// prompt with the next of answers (Postpone once they run out).
type people struct {
	clock *fakeClock

	mu      sync.Mutex // guards the fields below
	answers []notify.Answer
	shown   []shown
}

// shown is one notice or prompt.
type shown struct {
	At      time.Time
	Prompt  bool
	Title   string
	Message string
	Answer  notify.Answer
}

func (p *people) Notify(_ context.Context, title, message string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shown = append(p.shown, shown{At: p.clock.Now(), Title: title, Message: message})
	return nil
}

func (p *people) Ask(_ context.Context, pr notify.Prompt) (notify.Answer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := notify.Postpone
	if len(p.answers) > 0 {
		a, p.answers = p.answers[0], p.answers[1:]
	}
	p.shown = append(p.shown, shown{At: p.clock.Now(), Prompt: true, Title: pr.Title, Message: pr.Message, Answer: a})
	return a, nil
}

func (p *people) all() []shown {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]shown(nil), p.shown...)
}

func (p *people) prompts() []time.Time {
	var at []time.Time
	for _, s := range p.all() {
		if s.Prompt {
			at = append(at, s.At)
		}
	}
	return at
}
