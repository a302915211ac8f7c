// Package loader turns the files of a fleet repository into a
// schema.Fleet: it evaluates each client's CUE against the embedded
// schema, decodes it into the types of package schema and vets what the
// schema cannot express (a client id that differs from its directory,
// duplicate ring names, unknown windows and time zones, exclusions without
// reason or expiry).
//
// Each clients/<id> directory is loaded as one CUE instance together with
// the root files of the same package, unified with the schema's #Fleet,
// validated, decoded and vetted; a field the client leaves out comes from
// the root files' defaults, as fleet.cue describes. A client with an
// error-level problem is left out of Fleet.Clients; the rest still load.
// Problems carry the repository-relative path:line:col of the CUE at
// fault, and error messages say what to write instead.
//
// The Loader reads a working tree itself (LoadDir) or takes the files as
// given (LoadFiles); reading a Git revision is package reconciler/source's
// job, which hands the files the Loader wants to LoadFiles. The Loader
// caches each client's outcome by a digest of the files that make it up
// and of the schema, evaluates clients concurrently, and gives up on a
// client whose evaluation runs past Options.Timeout; at most GOMAXPROCS
// evaluations run at once, abandoned ones included, which bounds the CPU
// and memory a pathological repository can take.
package loader
