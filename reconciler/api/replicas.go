package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/patchline/patchline/reconciler/store"
)

// Hooks for replicas that share one store: another replica's writes reach
// this server's caches and long-polls only through these.

// ForgetEndpoint reads endpoint id's enrollment from the store again,
// after another replica enrolled, revoked or deleted it, and wakes its
// long-polls, which then end as the enrollment now says. It stores what
// it read rather than dropping the cache entry, so that a read made
// before the change cannot put the old enrollment back.
func (s *Server) ForgetEndpoint(ctx context.Context, id string) error {
	ep, err := s.cfg.Store.EndpointByID(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.enrolled.Store(id, cachedEnrollment{deleted: true})
	case err != nil:
		// Unsure what holds: ask the store on the next request.
		s.enrolled.Delete(id)
		return fmt.Errorf("read endpoint %q again: %w", id, err)
	default:
		s.enrolled.Store(id, cachedEnrollment{ep: ep})
	}
	s.Notify(id)
	return nil
}

// ForgetEndpoints empties the enrollment cache, when changes to it may
// have been missed (the connection that carries them was lost).
func (s *Server) ForgetEndpoints() { s.enrolled.Clear() }

// ReloadTokens reads the admin API tokens from the store again, after
// another replica created or revoked one.
func (s *Server) ReloadTokens(ctx context.Context) error {
	ts := &s.tokens
	ts.writing.Lock()
	defer ts.writing.Unlock()
	ts.mu.Lock()
	ts.loaded = false
	ts.mu.Unlock()
	return ts.loadLocked(ctx)
}

// NotifyAll wakes every waiting long-poll, which then reads its due jobs
// again: jobs may have been created whose notifications were missed.
func (s *Server) NotifyAll() {
	ws := s.waiters
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, set := range ws.byEndpoint {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
