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
// fault, and error messages say what to write instead (the field
// probably meant, the allowed values, an example), never CUE's bare
// text. Every problem of a client shows at once: the checks beyond the
// schema and the expiry warnings run on whatever part of a client with
// schema errors decodes, leaving out each check whose values have an
// error already (problems.go, fields.go).
//
// A fleet repository may keep a copy of the schema as the CUE package
// patchline.dev/schema, for the cue command and editors, its root files
// embedding #Fleet (WriteSchema lays it down). The loader never evaluates
// that copy: it binds the import to its own definitions and warns when
// the copy differs from the binary's (repo.go).
//
// The Loader reads a working tree itself (LoadDir) or takes the files as
// given (LoadFiles); reading a Git revision is package reconciler/source's
// job, which hands the files the Loader wants to LoadFiles. The Loader
// caches each client's outcome by a digest of the files that make it up
// and of the schema, and evaluates clients concurrently, at most
// GOMAXPROCS at once.
//
// A fleet repository is input the controller must survive: a CUE
// comprehension can run for minutes and fill memory, and CUE evaluation
// cannot be interrupted. So patchd and patchctl evaluate each client in a
// child process of their own binary (Options.Evaluator, SelfEvaluator;
// the binary's main serves EvaluatorArg with ServeEvaluator): the request
// (the client's files) goes to the child's stdin as JSON and the answer
// (the decoded schema.Client, or its problems) comes back on its stdout.
// The child is killed, with its process group, past Options.Timeout
// (default 10 s) or above Options.MemoryLimit of resident memory (default
// 512 MiB; read from /proc every 50 ms on Linux, and the child keeps its
// Go heap under it with debug.SetMemoryLimit), and on Linux RLIMIT_CPU
// bounds its CPU time should the parent fail to. The client is refused with
// "evaluation exceeded 10s" (or "512 MiB") at its first file, and the
// child's slot is free as soon as it has been reaped. Tests and
// benchmarks of trusted files may evaluate in process, without limits.
package loader
