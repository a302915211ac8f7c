// Package reconciler is Patchline's controller, patchd: it follows a fleet
// repo, turns each client's policy and its endpoints' reports into
// decisions and jobs, and hands the jobs to agents.
//
// The pipeline is source → policy → plan → dispatch, and the package is
// split by who owns what:
//
//   - Controller (controller.go) serves: it checks the configuration, locks
//     the data directory, opens the store and the signing key, and runs the
//     API, /metrics (on a listener of its own) and the two parts below
//     until its context ends.
//   - revisions (revisions.go, phases.go, follow.go) owns the policy: the
//     branch head, the revision each client runs, the last refusal. It
//     applies a fleet commit as ordered phases (verify → load → split
//     problems → record → enqueue); a phase's error decides whether the
//     commit is refused (a verdict: the last good revision keeps running)
//     or tried again on the next fetch (the repo or the store is not
//     reachable).
//   - replanner (replan.go, jobs.go) owns re-planning: it plans one client
//     with the same pure planner `patchctl plan` runs, numbers and signs the
//     new jobs, stores them in one transaction and wakes the agents waiting
//     for them. It owns the timers (a window opening, a soak ending, an
//     endpoint turning stale), reads the time from an injected clock, and
//     keeps each client's figures and last error for /v1/status.
//
// The reconcile is level-based: an event (a new revision, a report, a
// result, a timer) only says which client to look at again; the re-plan
// compares that client's whole desired and reported state. A keyed queue
// (queue.go) turns a burst of events for one client into one re-plan, and
// retries a failed re-plan with a backoff, without holding the other
// clients back.
package reconciler
