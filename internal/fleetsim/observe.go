package fleetsim

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/protocol"
)

// collector gathers what the simulated agents do. The agents run the real
// agent code, which exposes no hooks; the simulator watches them through
// the two things it hands each agent: its backend (Inventory starts a
// report, Install means a job arrived) and its logger (the agent logs
// enrolment, each acknowledged report and every failure).
type collector struct {
	start time.Time

	// mu guards everything below.
	mu sync.Mutex
	// per-agent progress, indexed like the agents.
	reportStart []time.Time
	reportDone  []time.Time
	enrolled    []bool
	reported    []bool
	// lastFirstReport is, per client, when its last agent's first report
	// was acknowledged: a client summary planned before it is stale.
	lastFirstReport map[string]time.Time
	nEnrolled       int
	nReported       int
	firstReportAt   time.Time
	allReportedAt   time.Time
	reports         int
	reportsPerSec   map[int]int // second since start → reports acknowledged
	checkIn         []time.Duration
	jobWait         map[string][]time.Duration // ring → wait
	jobs            int
	installsOK      int
	installsFailed  int
	errors          map[string]int
	// stopped is set when the simulation ends: failures the agents log
	// while they are being stopped are not the controller's.
	stopped bool
	// held is told the client of every job that carries HeldUpdate.
	held chan string
}

// stop marks the end of the simulation.
func (c *collector) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

func newCollector(n int, start time.Time) *collector {
	return &collector{
		start:           start,
		reportStart:     make([]time.Time, n),
		reportDone:      make([]time.Time, n),
		enrolled:        make([]bool, n),
		reported:        make([]bool, n),
		lastFirstReport: map[string]time.Time{},
		reportsPerSec:   map[int]int{},
		jobWait:         map[string][]time.Duration{},
		errors:          map[string]int{},
		held:            make(chan string, 1024),
	}
}

// simAgent is what the collector knows of one agent.
type simAgent struct {
	i      int
	client string
	ring   string
}

// observedBackend wraps a simulated backend: it shows the agent only the
// updates chosen for it and tells the collector when a report starts and a
// job arrives.
type observedBackend struct {
	backend.Backend
	c       *collector
	a       simAgent
	visible map[string]bool
}

func (b *observedBackend) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	b.c.mu.Lock()
	b.c.reportStart[b.a.i] = time.Now()
	b.c.mu.Unlock()
	ups, err := b.Backend.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := ups[:0]
	for _, u := range ups {
		if b.visible[u.ID] {
			out = append(out, u)
		}
	}
	return out, nil
}

func (b *observedBackend) Install(ctx context.Context, ups []*protocol.Update) ([]backend.Result, error) {
	now := time.Now()
	held := false
	for _, u := range ups {
		held = held || u.ID == HeldUpdate
	}
	c := b.c
	c.mu.Lock()
	c.jobs++
	// A job for the released hold answers a commit, not the agent's last
	// report: commit-to-job latency times it.
	if last := c.reportDone[b.a.i]; !last.IsZero() && !held {
		c.jobWait[b.a.ring] = append(c.jobWait[b.a.ring], now.Sub(last))
	}
	c.mu.Unlock()
	if held {
		select {
		case c.held <- b.a.client:
		default:
		}
	}
	res, err := b.Backend.Install(ctx, ups)
	c.mu.Lock()
	for _, r := range res {
		if r.Succeeded {
			c.installsOK++
		} else {
			c.installsFailed++
			c.errors["install failed (simulated)"]++
		}
	}
	c.mu.Unlock()
	return res, err
}

// chooseVisible picks what a simulated endpoint shows: everything it has
// installed, HeldUpdate when it has it, and at most missing other missing
// updates whose requirements are already installed. Leaving out
// dependants of missing updates keeps every planned job installable: the
// simulated catalogue draws KB numbers per endpoint, so one KB id can need
// different prerequisites on different endpoints, which no real catalogue
// does.
func chooseVisible(ups []*protocol.Update, missing int) map[string]bool {
	visible := map[string]bool{}
	installed := map[string]bool{}
	for _, u := range ups {
		if u.Installed {
			installed[u.ID] = true
		}
		if u.Installed || u.ID == HeldUpdate {
			visible[u.ID] = true
		}
	}
	for _, u := range ups {
		if missing == 0 {
			break
		}
		if visible[u.ID] {
			continue
		}
		ok := true
		for _, r := range u.Requires {
			ok = ok && installed[r]
		}
		if ok {
			visible[u.ID] = true
			missing--
		}
	}
	return visible
}

// agentLog is an agent's slog handler: it turns the agent's log records
// into the collector's events and drops them.
type agentLog struct {
	c *collector
	a simAgent
}

func (h agentLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h agentLog) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h agentLog) WithGroup(string) slog.Handler                { return h }

func (h agentLog) Handle(_ context.Context, r slog.Record) error {
	c := h.c
	switch {
	case r.Message == "enrolled":
		c.mu.Lock()
		if !c.enrolled[h.a.i] {
			c.enrolled[h.a.i] = true
			c.nEnrolled++
		}
		c.mu.Unlock()
	case r.Message == "inventory reported":
		now := time.Now()
		c.mu.Lock()
		c.reports++
		c.reportsPerSec[int(now.Sub(c.start)/time.Second)]++
		if s := c.reportStart[h.a.i]; !s.IsZero() {
			c.checkIn = append(c.checkIn, now.Sub(s))
		}
		c.reportDone[h.a.i] = now
		if !c.reported[h.a.i] {
			c.reported[h.a.i] = true
			c.nReported++
			if c.firstReportAt.IsZero() {
				c.firstReportAt = now
			}
			if c.nReported == len(c.reported) {
				c.allReportedAt = now
			}
			c.lastFirstReport[h.a.client] = now
		}
		c.mu.Unlock()
	case r.Level >= slog.LevelWarn:
		// A warning without an error (a reboot the simulation does not
		// perform) is not a failure.
		kind := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				kind = r.Message + ": " + errorClass(a.Value.String())
				return false
			}
			return true
		})
		if kind == "" && r.Level < slog.LevelError {
			return nil
		}
		if kind == "" {
			kind = r.Message
		}
		c.mu.Lock()
		if !c.stopped {
			c.errors[kind]++
		}
		c.mu.Unlock()
	}
	return nil
}

// errorClass sorts an error message into a few kinds, so the summary
// counts kinds rather than every distinct message.
func errorClass(msg string) string {
	m := strings.ToLower(msg)
	for _, k := range []struct{ needle, class string }{
		{"connection refused", "connection refused"},
		{"connection reset", "connection reset"},
		{"too many open files", "too many open files"},
		{"timeout", "timeout"},
		{"context canceled", "cancelled"},
		{"deadline exceeded", "timeout"},
		{"eof", "connection closed"},
		{"unavailable", "controller unavailable (5xx)"},
		{"giving up after", "retries exhausted"},
		{"unauthorized", "unauthorised"},
		{"forbidden", "forbidden"},
	} {
		if strings.Contains(m, k.needle) {
			return k.class
		}
	}
	return "other"
}
