package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Bounds of an inventory report, beyond the body size. They keep one
// endpoint from filling the store or the planner with junk.
const (
	maxUpdates    = 50_000
	maxLabels     = 64
	maxLabelKey   = 63
	maxLabelValue = 256
	maxUpdateID   = 512
	maxListItems  = 1_000 // CVEs and requires of one update
	// maxSeq bounds the sequence numbers an agent sends, far above any
	// agent's lifetime, so that numbering a job after one cannot overflow.
	maxSeq = 1 << 53
)

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
	if err := validateReport(ep, &rep); err != nil {
		return err
	}
	err := s.cfg.Store.ReplaceInventory(r.Context(), store.Report{
		Endpoint:      ep.ID,
		Hostname:      rep.Hostname,
		OS:            rep.OS,
		Labels:        rep.Labels,
		RebootPending: rep.RebootPending,
		Updates:       rep.Updates,
		At:            s.cfg.Now(),
		Seq:           rep.Seq,
		JobSeq:        rep.JobSeq,
	})
	if err != nil {
		return storeError(err, "endpoint not found")
	}
	s.cfg.Events.Reported(r.Context(), ep.Client, ep.ID)
	writeJSON(w, http.StatusOK, protocol.ReportResponse{Updates: len(rep.Updates)})
	return nil
}

// validateReport checks a report before anything is stored. Update ids,
// sources, categories, severities and attempt results are checked by the
// state package's own validation, so a report the API accepts is one the
// state snapshot codec accepts too.
func validateReport(ep store.Enrollment, rep *protocol.Report) error {
	switch {
	case rep.Hostname == "" || len(rep.Hostname) > maxHostname:
		return errorf(protocol.CodeInvalid, "hostname: must have 1 to %d characters", maxHostname)
	case !slices.Contains(osFamilies, rep.OS.Family):
		return errorf(protocol.CodeInvalid, "os.family: unknown OS family %q (want windows, linux or macos)", rep.OS.Family)
	case len(rep.Updates) > maxUpdates:
		return errorf(protocol.CodeInvalid, "updates: %d updates, at most %d are accepted", len(rep.Updates), maxUpdates)
	}
	if err := checkSeq("seq", rep.Seq); err != nil {
		return err
	}
	if err := checkSeq("jobSeq", rep.JobSeq); err != nil {
		return err
	}
	if err := validateLabels(rep.Labels); err != nil {
		return err
	}
	for i, u := range rep.Updates {
		if u == nil {
			continue // state validation names it
		}
		switch {
		case len(u.ID) > maxUpdateID:
			return errorf(protocol.CodeInvalid, "updates[%d].id: longer than %d characters", i, maxUpdateID)
		case len(u.CVEs) > maxListItems:
			return errorf(protocol.CodeInvalid, "updates[%d].cves: more than %d", i, maxListItems)
		case len(u.Requires) > maxListItems:
			return errorf(protocol.CodeInvalid, "updates[%d].requires: more than %d", i, maxListItems)
		}
	}
	snap := protocol.Snapshot{
		APIVersion: protocol.SnapshotAPIVersion,
		Endpoints:  []*protocol.Endpoint{{ID: ep.ID, Client: ep.Client, Updates: rep.Updates}},
	}
	if err := snap.Validate(); err != nil {
		return errorf(protocol.CodeInvalid, "%s", strings.TrimPrefix(err.Error(), "endpoints[0]."))
	}
	return nil
}

// validateLabels bounds an endpoint's labels.
func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return errorf(protocol.CodeInvalid, "labels: %d labels, at most %d are accepted", len(labels), maxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > maxLabelKey {
			return errorf(protocol.CodeInvalid, "labels: key %q must have 1 to %d characters", truncate(k, maxLabelKey), maxLabelKey)
		}
		if len(v) > maxLabelValue {
			return errorf(protocol.CodeInvalid, "labels.%s: value longer than %d characters", k, maxLabelValue)
		}
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s...", s[:n])
}
