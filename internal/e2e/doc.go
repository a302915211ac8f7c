// Package e2e holds Patchline's end-to-end and fault-injection tests: the
// real patchd and the real patch-agent (built once per run from cmd/, or
// run in-process through reconciler.New and agent.New where no process has
// to die), a real fleet repo, real SQLite, real HTTP on 127.0.0.1, the
// simulated backend (which counts every install) and, as root, the real apt
// backend on a throwaway dpkg root.
//
// What the suite proves, under faults, for every endpoint and update:
//
//   - exactly-once effect: each update is installed once (the sim
//     backend's persisted install counts), however often patchd is killed
//     with SIGKILL, the agent is killed before its result is acknowledged,
//     or the network drops, duplicates, delays and reorders requests;
//   - no lost result: every result in an agent's journal is stored exactly
//     once, and every acknowledged result survives a kill of patchd;
//   - ring order: no broad-ring job is created before the canary ring
//     passed for the update;
//   - interrupted installs: agents killed (SIGKILL) in the middle of an
//     install during a three-ring rollout in a daily window finish it in
//     the same window, halt no ring (not even a one-endpoint ring that
//     allows no failure) and install nothing twice;
//   - refusals: forged, expired, foreign, replayed and out-of-order signed
//     jobs install nothing and are reported; unsigned, wrongly signed and
//     rewound fleet commits are refused while the last good revision runs;
//   - robustness: an enrollment flood and malformed or oversized bodies
//     get 4xx answers (429 under the flood), status keeps answering and
//     stored state does not change; a partitioned part of a ring goes
//     stale instead of halting the rollout;
//   - hostile policy: a client whose CUE would evaluate for minutes is
//     refused at the evaluation deadline while commits to the other
//     clients keep applying, patchd's memory stays small, and a restart
//     with it in the history starts in seconds;
//   - rollback: a commit adding a rollback entry has apt downgrade each
//     endpoint's isolated root to the older version, canary before broad,
//     and nothing installs the update again while the entry stands; with
//     no older version to return to, the rollback fails and says so.
//
// The default run is short. The long variants (500 agents and 20 kills,
// a 30 s controller outage, a bigger chaos run, a longer flood) run with
//
//	go test ./internal/e2e -long
//
// Random fault schedules are seeded; each test logs its seed, and -seed N
// replays it.
package e2e
