// Package schema holds the CUE schema of a Patchline fleet repository
// (fleet.cue, embedded in the binary), the Go types a client's policy
// decodes into, and the Loader that turns a repository, read from a
// working tree or handed over by reconciler/source from a Git revision,
// into a Fleet.
//
// A fleet repository looks like this:
//
//	cue.mod/module.cue   the CUE module; its presence marks a fleet repository
//	fleet.cue            package fleet: defaults shared by every client
//	clients/acme/*.cue   package fleet: one directory per client
//
// Each clients/<id> directory is loaded as one CUE instance together with
// the root files of the same package, unified with the schema's #Fleet,
// validated, decoded and vetted. Root files share lists with clients
// through the defaults field: a client that does not write rings,
// exclusions, freezes, resume, baseline.approve or baseline.require gets
// defaults.<field>, a client that writes the field replaces the default,
// and a client extends it with list.Concat([defaults.exclusions, [...]]).
// The comment at the top of fleet.cue spells the convention out.
//
// Every finding is a Problem with a repository-relative path:line:col. A
// client with an error-level problem is left out of Fleet.Clients; the
// rest still load. Every decoded rule carries the Pos of the CUE that
// wrote it, so decisions can cite path:line.
//
// The Loader caches each client's outcome by a digest of the files that
// make it up and of the schema, evaluates clients concurrently, and gives
// up on a client whose evaluation runs past Options.Timeout.
package schema
