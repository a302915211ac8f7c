package store

import (
	"slices"
	"strings"

	"github.com/patchline/patchline/protocol"
)

// FindUpdate returns the update with the given id among e's updates, which
// are sorted by id, for a snapshot to attach an attempt or an open job to.
// An agent update (protocol.AgentUpdateID) is never reported, so the
// first attempt or job naming one puts it among e's updates, in order,
// installed when e's agent runs its version: the planner finds there the
// history of the agent's self-update, as of any update. Any other id the
// endpoint no longer reports is nil.
func FindUpdate(e *protocol.Endpoint, id string) *protocol.Update {
	i, found := slices.BinarySearchFunc(e.Updates, id, func(u *protocol.Update, id string) int { return strings.Compare(u.ID, id) })
	if found {
		return e.Updates[i]
	}
	v, ok := protocol.AgentUpdateVersion(id)
	if !ok {
		return nil
	}
	u := protocol.AgentUpdate(v, e.AgentVersion)
	e.Updates = slices.Insert(e.Updates, i, u)
	return u
}
