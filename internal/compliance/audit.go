package compliance

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/patchline/patchline/reconciler/store"
)

// AuditPage is one page of the controller's GET /v1/audit answer.
type AuditPage struct {
	Entries []store.AuditEntry
	// Next is the id to pass as ?after= for the following page.
	Next int64
}

// DecodeAuditPage reads one page of GET /v1/audit.
func DecodeAuditPage(r io.Reader) (AuditPage, error) {
	var page struct {
		Entries []struct {
			ID       int64           `json:"id"`
			At       time.Time       `json:"at"`
			Kind     store.AuditKind `json:"kind"`
			Client   string          `json:"client"`
			Endpoint string          `json:"endpoint"`
			Revision string          `json:"revision"`
			Job      string          `json:"job"`
			Detail   json.RawMessage `json:"detail"`
		} `json:"entries"`
		Next int64 `json:"next"`
	}
	if err := json.NewDecoder(r).Decode(&page); err != nil {
		return AuditPage{}, fmt.Errorf("decode audit page: %w", err)
	}
	out := AuditPage{Next: page.Next, Entries: make([]store.AuditEntry, len(page.Entries))}
	for i, e := range page.Entries {
		out.Entries[i] = store.AuditEntry{
			ID: e.ID, At: e.At, Kind: e.Kind, Client: e.Client, Endpoint: e.Endpoint,
			Revision: e.Revision, Job: e.Job, Detail: e.Detail,
		}
	}
	return out, nil
}
