// Package schema holds the vocabulary of a Patchline fleet repository: the
// CUE schema (fleet.cue, embedded in the binary as [CUE], and the copy a
// repository keeps for the cue command, [Package]), the Go types a
// client's policy decodes into, the positioned [Problem] every finding is,
// and the parsers of policy durations, dates and times of day. It does no
// I/O and evaluates no CUE, so the pure planner can import it: package
// schema/loader turns a repository's files into a [Fleet], and package
// reconciler/source reads those files from a Git revision.
//
// A fleet repository looks like this:
//
//	cue.mod/module.cue   the CUE module; its presence marks a fleet repository
//	cue.mod/pkg/patchline.dev/schema/schema.cue
//	                     the schema's copy (PackageFile), for cue vet and editors
//	fleet.cue            package fleet: defaults shared by every client
//	clients/acme/*.cue   package fleet: one directory per client
//
// Root files share lists with clients through the defaults field: a client
// that does not write rings, exclusions, freezes, resume, baseline.approve
// or baseline.require gets defaults.<field>, a client that writes the field
// replaces the default, and a client extends it with
// list.Concat([defaults.exclusions, [...]]). The comment at the top of
// fleet.cue spells the convention out.
//
// Every finding is a Problem with a repository-relative path:line:col, and
// every decoded rule carries the Pos of the CUE that wrote it, so decisions
// can cite path:line.
package schema
