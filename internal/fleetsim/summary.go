package fleetsim

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Percentiles sum up a set of durations.
type Percentiles struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// percentiles computes the nearest-rank percentiles of ds (which it
// sorts).
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	rank := func(p float64) time.Duration {
		i := int(float64(len(ds))*p+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Percentiles{N: len(ds), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: ds[len(ds)-1]}
}

func (p Percentiles) String() string {
	if p.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max), p.N)
}

// ms formats a duration in milliseconds, or seconds from 10 s up.
func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func mib(b int64) string {
	if b == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// WriteText writes the summary as a two-column table.
func (s *Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("agents", "%d across %d clients (enrolled %d, reported %d)", s.Agents, s.Clients, s.Enrolled, s.Reported)
	if s.Converged {
		row("converged", "yes, in %.1fs from the first agent's start", s.ConvergeTime.Seconds())
	} else {
		row("converged", "NO, within %.1fs", s.Elapsed.Seconds())
	}
	if s.AllReported > 0 {
		row("all reported", "%.1fs after the start", s.AllReported.Seconds())
	}
	row("reports", "%d acknowledged; first wave %.0f/s, peak %d in one second", s.Reports, s.ReportRate, s.PeakReportRate)
	row("check-in latency", "%s", s.CheckIn)
	rings := make([]string, 0, len(s.JobWait))
	for r := range s.JobWait {
		rings = append(rings, r)
	}
	sort.Slice(rings, func(i, j int) bool { return ringOrder(rings[i]) < ringOrder(rings[j]) })
	for _, r := range rings {
		row("job wait ("+r+")", "%s", s.JobWait[r])
	}
	row("jobs", "%d delivered; installs %d ok, %d failed", s.Jobs, s.InstallsOK, s.InstallsFailed)
	if s.CommitToJob.N > 0 {
		row("commit-to-job", "%s", s.CommitToJob)
	}
	if len(s.ReplicaRSS) > 1 {
		each := make([]string, len(s.ReplicaRSS))
		for i, rss := range s.ReplicaRSS {
			each[i] = mib(rss)
		}
		row("controller RSS", "%s peak per replica (from their metrics)", strings.Join(each, ", "))
	} else {
		row("controller RSS", "%s peak (from its metrics)", mib(s.ControllerRSS))
	}
	row("simulator RSS", "%s peak", mib(s.SimulatorRSS))
	if len(s.Halted) > 0 {
		row("halted rollouts", "%s", strings.Join(s.Halted, ", "))
	}
	if len(s.Errors) == 0 {
		row("errors", "none")
	}
	kinds := make([]string, 0, len(s.Errors))
	for k := range s.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		row("error", "%d × %s", s.Errors[k], k)
	}
	return tw.Flush()
}

func ringOrder(r string) int {
	switch r {
	case "canary":
		return 0
	case "pilot":
		return 1
	case "broad":
		return 2
	}
	return 3
}
