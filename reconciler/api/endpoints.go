package api

import (
	"errors"
	"net/http"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// listEndpoints handles GET /v1/endpoints?client=ID: the enrolled
// endpoints, revoked ones too, of one client or of every client the
// caller may see.
func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request, c caller) error {
	clients := c.clients
	if client := r.URL.Query().Get("client"); client != "" {
		if err := protocol.CheckClientID(client); err != nil {
			return errorf(protocol.CodeInvalid, "client: %v", err)
		}
		if !c.sees(client) {
			return errorf(protocol.CodeForbidden, "token %q is limited to other clients than %s", c.name, client)
		}
		clients = []string{client}
	}
	eps, err := s.cfg.Store.Endpoints(r.Context(), clients)
	if err != nil {
		return err
	}
	list := protocol.EndpointList{Endpoints: make([]protocol.EndpointInfo, 0, len(eps))}
	for _, e := range eps {
		info := endpointInfo(e.Enrollment)
		info.LastSeen = e.LastSeen.UTC()
		list.Endpoints = append(list.Endpoints, info)
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// revokeEndpoint handles POST /v1/endpoints/{id}/revoke. From the moment
// it answers, the endpoint's node key is refused on every route (the
// cached enrollment is replaced by the revoked one, and its waiting
// long-polls are woken to end), it gets no job (its open jobs expired
// with the revocation; the planner no longer sees it), and it stays
// listed, revoked, with its history.
func (s *Server) revokeEndpoint(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := endpointParam(r)
	if err != nil {
		return err
	}
	ep, err := s.cfg.Store.RevokeEndpoint(r.Context(), id, c.name, s.cfg.Now())
	if err != nil {
		return manageError(err, id)
	}
	s.enrolled.Store(id, cachedEnrollment{ep: ep})
	s.Notify(id)
	s.cfg.Events.Removed(r.Context(), ep.Client, id)
	s.log.InfoContext(r.Context(), "endpoint revoked", "client", ep.Client, "endpoint", id, "by", c.name)
	writeJSON(w, http.StatusOK, endpointInfo(ep))
	return nil
}

// deleteEndpoint handles DELETE /v1/endpoints/{id}: the endpoint, its
// inventory, jobs and results are deleted (its audit entries stay), its
// node key is refused from the moment this answers, and its id may enroll
// again.
func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := endpointParam(r)
	if err != nil {
		return err
	}
	ep, err := s.cfg.Store.DeleteEndpoint(r.Context(), id, c.name, s.cfg.Now())
	if err != nil {
		return manageError(err, id)
	}
	s.enrolled.Store(id, cachedEnrollment{deleted: true})
	s.Notify(id)
	s.cfg.Events.Removed(r.Context(), ep.Client, id)
	s.log.InfoContext(r.Context(), "endpoint deleted", "client", ep.Client, "endpoint", id, "by", c.name)
	writeJSON(w, http.StatusOK, endpointInfo(ep))
	return nil
}

// endpointParam is the endpoint id of a route's path.
func endpointParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := protocol.CheckText(protocol.TextName, id); err != nil || id == "" || len(id) > protocol.MaxIDBytes {
		return "", errorf(protocol.CodeNotFound, "no endpoint %.80q", id)
	}
	return id, nil
}

// manageError is what revoking or deleting endpoint id answers for a
// store error.
func manageError(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(protocol.CodeNotFound, "no endpoint %q", id)
	}
	return storeError(err, "")
}

// endpointInfo is e as the admin API shows it.
func endpointInfo(e store.Enrollment) protocol.EndpointInfo {
	return protocol.EndpointInfo{
		ID: e.ID, Client: e.Client, Hostname: e.Hostname, EnrolledAt: e.EnrolledAt.UTC(),
		RevokedAt: e.RevokedAt.UTC(), RevokedBy: e.RevokedBy,
	}
}
