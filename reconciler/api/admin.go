package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/source"
)

// Page sizes of GET /v1/audit.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// status handles GET /v1/status with the controller's status document;
// a caller limited to some clients gets those clients' part (statusFor).
func (s *Server) status(w http.ResponseWriter, r *http.Request, c caller) error {
	doc, err := s.cfg.Status(r.Context())
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	// Encode before answering so an unencodable document is a clean 500.
	b, err := json.Marshal(statusFor(doc, c))
	if err != nil {
		return fmt.Errorf("status: encode: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// statusFor is the part of st a caller may see. A caller limited to some
// clients sees the branch head, the whole fleet's revision and refusal
// (the shared files govern its clients too), and its clients' revisions,
// refusals and figures; not other clients, nor the source's error, which
// is about the controller's own access to the fleet repo.
func statusFor(st *protocol.Status, c caller) *protocol.Status {
	if st == nil || !c.limited() {
		return st
	}
	out := &protocol.Status{Version: st.Version, Head: st.Head, Revisions: []protocol.RevisionStatus{}, Clients: []protocol.ClientStatus{}}
	if st.Refused != nil && (st.Refused.Client == "" || c.sees(st.Refused.Client)) {
		out.Refused = st.Refused
	}
	for _, rs := range st.Revisions {
		if rs.Client == "" || c.sees(rs.Client) {
			out.Revisions = append(out.Revisions, rs)
		}
	}
	for _, cs := range st.Clients {
		if c.sees(cs.Client) {
			out.Clients = append(out.Clients, cs)
		}
	}
	return out
}

// state handles GET /v1/state: the reported state of every endpoint (of
// the caller's clients, when it is limited to some) as a state snapshot,
// which `patchctl plan --state` reads.
func (s *Server) state(w http.ResponseWriter, r *http.Request, c caller) error {
	snap, err := s.snapshotFor(r.Context(), c)
	if err != nil {
		return fmt.Errorf("state snapshot: %w", err)
	}
	var buf bytes.Buffer
	if err := protocol.EncodeSnapshot(&buf, snap); err != nil {
		return err
	}
	// A large fleet's state is a large answer: it gets as long as its
	// size takes at minAnswerRate.
	s.extendDeadlines(w, sizeAllowance(int64(buf.Len())))
	w.Header().Set("Content-Type", "application/json")
	_, _ = buf.WriteTo(w)
	return nil
}

// snapshotFor is the state snapshot of the endpoints c may see.
func (s *Server) snapshotFor(ctx context.Context, c caller) (*protocol.Snapshot, error) {
	now := s.cfg.Now()
	if !c.limited() {
		return s.cfg.Store.Snapshot(ctx, now)
	}
	snap := &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: now, Endpoints: []*protocol.Endpoint{}}
	for _, client := range c.clients {
		cs, err := s.cfg.Store.ClientSnapshot(ctx, client, now)
		if err != nil {
			return nil, err
		}
		snap.Endpoints = append(snap.Endpoints, cs.Endpoints...)
	}
	// Sorted by id, as the whole fleet's snapshot is.
	slices.SortFunc(snap.Endpoints, func(a, b *protocol.Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return snap, nil
}

// backup handles GET /v1/backup: a consistent copy of the store, made
// while the controller runs, as an SQLite file that `patchd restore`
// takes. The copy is complete before the answer starts, so a failure is
// a clean error rather than a truncated file. A store that makes no copy
// (PostgreSQL's, backed up with the database's own tools) refuses as
// invalid, and its message, which says what to do, is the answer. The
// backup scope cannot be limited to clients: a backup is every client's.
func (s *Server) backup(w http.ResponseWriter, r *http.Request, _ caller) error {
	// The backup is sent after the copy is made, a long answer by
	// design: the copy gets backupPrepare, and the sending as long as its
	// size takes at minAnswerRate.
	s.extendDeadlines(w, backupPrepare)
	rc, size, err := s.cfg.Store.Backup(r.Context())
	if err != nil {
		return storeError(fmt.Errorf("backup: %w", err), "")
	}
	defer rc.Close()
	s.extendDeadlines(w, sizeAllowance(size))
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", `attachment; filename="patchline-`+s.cfg.Now().UTC().Format("20060102T150405Z")+`.db"`)
	if _, err := io.Copy(w, rc); err != nil {
		// The status is sent: the client sees a short body against
		// Content-Length.
		s.log.WarnContext(r.Context(), "backup not fully sent", "err", err)
	}
	return nil
}

// audit handles GET /v1/audit?after=ID&limit=N: audit entries after ID,
// oldest first. A caller limited to some clients gets their entries and
// the entries of the whole fleet's revisions and of restores (see
// Store.AuditFor), not the entries of token management.
func (s *Server) audit(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	after, limit := int64(0), defaultAuditLimit
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errorf(protocol.CodeInvalid, "after: %q is not an audit entry id", v)
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			return errorf(protocol.CodeInvalid, "limit: %q is not a number from 1 to %d", v, maxAuditLimit)
		}
		limit = n
	}
	entries, err := s.cfg.Store.AuditFor(r.Context(), after, limit, c.clients)
	if err != nil {
		return storeError(err, "audit log not found")
	}
	page := protocol.AuditPage{Entries: entries, Next: after}
	for i, e := range entries {
		page.Entries[i].At = e.At.UTC()
		page.Next = e.ID
	}
	if page.Entries == nil {
		page.Entries = []protocol.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// gitHook handles POST /v1/hooks/git: a push webhook from the fleet repo's
// forge. A verified webhook makes the controller fetch now instead of at
// its next poll; what it fetches comes from Git, never from the body. A
// request without a signature header is refused before its body is read;
// one with a signature is admitted as a caller without credentials (see
// admit), and its body, at most maxWebhookBody, is read through the HMAC
// and kept nowhere.
func (s *Server) gitHook(w http.ResponseWriter, r *http.Request) error {
	sig, err := source.ParseWebhookSignature(r.Header)
	if err != nil {
		refuseUnread(w)
		return errorf(protocol.CodeUnauthorized, "%v", err)
	}
	done, err := s.admit(w, r, sourceAddr(r), maxWebhookBody)
	if err != nil {
		return err
	}
	provider, err := sig.Verify(r.Body, s.cfg.Secrets.webhook)
	done(err == nil)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errorf(protocol.CodeTooLarge, "request body is over %d bytes", tooLarge.Limit)
	}
	if err != nil {
		return errorf(protocol.CodeUnauthorized, "%v", err)
	}
	s.cfg.Events.GitHook(r.Context())
	writeJSON(w, http.StatusAccepted, struct {
		Provider string `json:"provider"`
	}{provider})
	return nil
}
