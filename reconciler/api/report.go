package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Bounds of an inventory report, beyond the body size and the bounds of
// each text (protocol.MaxIDBytes and others). They keep one endpoint from
// filling the store or the planner with junk.
const (
	maxUpdates   = 50_000
	maxListItems = 1_000 // CVEs and requires of one update
	// maxSeq bounds the sequence numbers an agent sends, far above any
	// agent's lifetime, so that numbering a job after one cannot overflow.
	maxSeq = 1 << 53
)

// The times an agent sends (an update's release, a result's) must fall
// between earliestTime and maxAhead after the controller's clock: an
// endpoint's clock may be somewhat off, but no update was released before
// 2000 nor will be tomorrow, and a time far out (9999-12-31) would
// overflow where the store counts nanoseconds.
var earliestTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const maxAhead = 24 * time.Hour

// checkTime checks a time an agent sent; the zero time means it sent
// none. The caller names the field.
func checkTime(t, now time.Time) error {
	if t.IsZero() {
		return nil
	}
	if latest := now.Add(maxAhead); t.Before(earliestTime) || t.After(latest) {
		return fmt.Errorf("%s is outside %s to %s (a day after the controller's clock)",
			t.UTC().Format(time.RFC3339), earliestTime.Format(time.DateOnly), latest.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkText checks v, the text an agent sent in field, by the protocol's
// rule for kind and bounds its length.
func checkText(field string, kind protocol.TextKind, max int, v string) error {
	if len(v) > max {
		return errorf(protocol.CodeInvalid, "%s: %d bytes, at most %d are accepted", field, len(v), max)
	}
	if err := protocol.CheckText(kind, v); err != nil {
		return errorf(protocol.CodeInvalid, "%s: %v", field, err)
	}
	return nil
}

// checkSeq checks a sequence number an agent sent in field.
func checkSeq(field string, v int64) error {
	if v < 0 || v > maxSeq {
		return errorf(protocol.CodeInvalid, "%s: %d is outside 0 to %d", field, v, int64(maxSeq))
	}
	return nil
}

// osFamilies are the OS families an endpoint may report.
var osFamilies = []string{"windows", "linux", "macos"}

// report handles POST /v1/report: the endpoint's inventory replaces the
// stored one.
func (s *Server) report(w http.ResponseWriter, r *http.Request, ep store.Enrollment) error {
	var rep protocol.Report
	if err := decodeJSON(w, r, &rep); err != nil {
		return err
	}
	if len(ep.Labels) > 0 {
		var overridden []string
		rep.Labels, overridden = withEnrollmentLabels(ep, rep.Labels)
		s.labelsOverridden(r.Context(), ep, overridden)
	}
	if err := validateReport(ep, &rep, s.cfg.Now()); err != nil {
		return err
	}
	err := s.cfg.Store.ReplaceInventory(r.Context(), store.Report{
		Endpoint:      ep.ID,
		Hostname:      rep.Hostname,
		OS:            rep.OS,
		Labels:        rep.Labels,
		RebootPending: rep.RebootPending,
		Reboot:        rep.Reboot,
		Updates:       rep.Updates,
		At:            s.cfg.Now(),
		Seq:           rep.Seq,
		JobSeq:        rep.JobSeq,
		AgentVersion:  rep.AgentVersion,
	})
	if err != nil {
		return storeError(err, "endpoint not found")
	}
	s.cfg.Events.Reported(r.Context(), ep.Client, ep.ID)
	writeJSON(w, http.StatusOK, protocol.ReportResponse{Updates: len(rep.Updates)})
	return nil
}

// validateReport checks a report before anything is stored; now is the
// controller's time. The update fields, and the text of the hostname, OS
// and labels, are checked by the snapshot's own validation, so a report
// the API accepts is one the state snapshot codec accepts too.
func validateReport(ep store.Enrollment, rep *protocol.Report, now time.Time) error {
	switch {
	case rep.Hostname == "" || len(rep.Hostname) > protocol.MaxHostnameBytes:
		return errorf(protocol.CodeInvalid, "hostname: must have 1 to %d characters", protocol.MaxHostnameBytes)
	case !slices.Contains(osFamilies, rep.OS.Family):
		return errorf(protocol.CodeInvalid, "os.family: unknown OS family %.40q (want windows, linux or macos)", rep.OS.Family)
	case len(rep.Updates) > maxUpdates:
		return errorf(protocol.CodeInvalid, "updates: %d updates, at most %d are accepted", len(rep.Updates), maxUpdates)
	}
	if err := checkSeq("seq", rep.Seq); err != nil {
		return err
	}
	if err := checkSeq("jobSeq", rep.JobSeq); err != nil {
		return err
	}
	if err := checkAgentVersion(rep.AgentVersion); err != nil {
		return err
	}
	if b := rep.Reboot; b != nil {
		if err := b.Validate(); err != nil {
			return errorf(protocol.CodeInvalid, "reboot.%v", err)
		}
		if err := checkTime(b.PendingSince, now); err != nil {
			return errorf(protocol.CodeInvalid, "reboot.pendingSince: %v", err)
		}
		// A reboot may be scheduled days ahead (a deadline, deferrals),
		// but not past a year.
		if t := b.ScheduledAt; !t.IsZero() && (t.Before(earliestTime) || t.After(now.AddDate(1, 0, 0))) {
			return errorf(protocol.CodeInvalid, "reboot.scheduledAt: %s is outside %s to a year after the controller's clock", t.UTC().Format(time.RFC3339), earliestTime.Format(time.DateOnly))
		}
	}
	for i, u := range rep.Updates {
		if u == nil {
			continue // state validation names it
		}
		if u.Source == protocol.SourcePatchline {
			return errorf(protocol.CodeInvalid, "updates[%d].source: %q is the controller's own agent update; an endpoint reports its agent's version in agentVersion", i, u.Source)
		}
		switch {
		case len(u.CVEs) > maxListItems:
			return errorf(protocol.CodeInvalid, "updates[%d].cves: more than %d", i, maxListItems)
		case len(u.Requires) > maxListItems:
			return errorf(protocol.CodeInvalid, "updates[%d].requires: more than %d", i, maxListItems)
		}
		if err := checkTime(u.Released, now); err != nil {
			return errorf(protocol.CodeInvalid, "updates[%d].released: %v", i, err)
		}
	}
	snap := protocol.Snapshot{
		APIVersion: protocol.SnapshotAPIVersion,
		Endpoints: []*protocol.Endpoint{{ID: ep.ID, Client: ep.Client, Hostname: rep.Hostname, OS: rep.OS, Labels: rep.Labels,
			Updates: rep.Updates}},
	}
	if err := snap.Validate(); err != nil {
		return errorf(protocol.CodeInvalid, "%s", strings.TrimPrefix(err.Error(), "endpoints[0]."))
	}
	return nil
}

// checkAgentVersion checks the agent version a report names: empty (an
// agent that does not say), or a name within bounds ("1.4.2", "devel").
func checkAgentVersion(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 64 || protocol.CheckText(protocol.TextName, v) != nil {
		return errorf(protocol.CodeInvalid, "agentVersion: want a version such as 1.4.2, of at most 64 printable characters")
	}
	return nil
}
