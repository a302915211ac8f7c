// Package lookup finds an endpoint, or one of its updates, in a state
// snapshot by what a technician types: an endpoint's id or its hostname
// (ACME-MAC-01), an update's id or its package name (firefox for
// firefox@139.0.1). When a name fits several, the error lists them with
// their ids; when it fits none, it lists the near misses. Text from the
// snapshot is escaped for the terminal in every error.
package lookup

import (
	"fmt"
	"slices"
	"strings"

	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
)

// maxHints bounds the near misses an error lists.
const maxHints = 5

// Endpoint returns the endpoint of snap that query names: the one whose
// id is query, else the one whose hostname is query, compared without
// regard to case. Several endpoints with that hostname are an error that
// lists their ids.
func Endpoint(snap *protocol.Snapshot, query string) (*protocol.Endpoint, error) {
	var eps []*protocol.Endpoint
	if snap != nil {
		eps = slices.DeleteFunc(slices.Clone(snap.Endpoints), func(ep *protocol.Endpoint) bool { return ep == nil })
	}
	if i := slices.IndexFunc(eps, func(ep *protocol.Endpoint) bool { return ep.ID == query }); i >= 0 {
		return eps[i], nil
	}
	var named []*protocol.Endpoint
	for _, ep := range eps {
		if strings.EqualFold(ep.Hostname, query) {
			named = append(named, ep)
		}
	}
	switch len(named) {
	case 1:
		return named[0], nil
	case 0:
		var near []string
		for _, ep := range eps {
			if containsFold(ep.ID, query) || containsFold(ep.Hostname, query) {
				near = append(near, describeEndpoint(ep))
			}
		}
		return nil, fmt.Errorf("endpoint %q is not in the state snapshot: no endpoint has that id or hostname%s", query, hints(near))
	}
	list := make([]string, len(named))
	for i, ep := range named {
		list[i] = describeEndpoint(ep)
	}
	return nil, fmt.Errorf("hostname %q names %d endpoints: %s; give --endpoint one of their ids", query, len(named), strings.Join(list, ", "))
}

// Update returns the update of ep that query names: the one whose id is
// query, else the one whose package name is query, compared without
// regard to case, when the endpoint reports exactly one version of it.
// Several versions are an error that lists their ids.
func Update(ep *protocol.Endpoint, query string) (*protocol.Update, error) {
	ups := slices.DeleteFunc(slices.Clone(ep.Updates), func(u *protocol.Update) bool { return u == nil })
	if i := slices.IndexFunc(ups, func(u *protocol.Update) bool { return u.ID == query }); i >= 0 {
		return ups[i], nil
	}
	var named []*protocol.Update
	for _, u := range ups {
		if strings.EqualFold(u.Name, query) {
			named = append(named, u)
		}
	}
	switch len(named) {
	case 1:
		return named[0], nil
	case 0:
		var near []string
		for _, u := range ups {
			if containsFold(u.ID, query) || containsFold(u.Title, query) {
				near = append(near, textsafe.Terminal(u.ID))
			}
		}
		return nil, fmt.Errorf("endpoint %s reports no update with the id or name %q%s", textsafe.Terminal(ep.ID), query, hints(near))
	}
	list := make([]string, len(named))
	for i, u := range named {
		state := "available"
		if u.Installed {
			state = "installed"
		}
		list[i] = textsafe.Terminal(u.ID) + " (" + state + ")"
	}
	return nil, fmt.Errorf("endpoint %s reports %d versions of %q: %s; give --update one of these ids",
		textsafe.Terminal(ep.ID), len(named), query, strings.Join(list, ", "))
}

// describeEndpoint is an endpoint as the errors list it: its id, hostname
// and client.
func describeEndpoint(ep *protocol.Endpoint) string {
	return fmt.Sprintf("%s (%s, client %s)", textsafe.Terminal(ep.ID), textsafe.Terminal(ep.Hostname), textsafe.Terminal(ep.Client))
}

// hints is the end of a not-found error that lists the near misses.
func hints(near []string) string {
	switch {
	case len(near) == 0:
		return ""
	case len(near) > maxHints:
		return fmt.Sprintf("; did you mean one of %s (and %d more)?", strings.Join(near[:maxHints], ", "), len(near)-maxHints)
	}
	return "; did you mean " + strings.Join(near, ", ") + "?"
}

// containsFold reports whether s contains sub, without regard to case.
func containsFold(s, sub string) bool {
	return sub != "" && strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
