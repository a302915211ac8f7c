// Package protocol is the one home of every JSON shape that crosses a
// process boundary in Patchline, and of the vocabulary those shapes are
// made of:
//
//   - the reported state of a fleet (Snapshot, Endpoint, Update, Attempt)
//     and its JSON snapshot codec, which the planner, the store, the agent
//     and `patchctl plan --state` share;
//   - the agent API (enrollment, reports, signed jobs, results) and its
//     error envelope, whose codes both sides map to and from HTTP status;
//   - the admin API's answers (Status, the audit page) and its tokens and
//     endpoint management (TokenRequest, Token, EndpointInfo);
//   - the secrets file patchd reads;
//   - how a revision (a commit hash) is shown: ShortRevision.
//
// It imports neither the controller, the store nor net/http, so the agent,
// `patchctl` and the simulator link it without linking patchd, and the pure
// planner can use its types. Behaviour (checking secrets, serving routes,
// planning) lives with the code that owns it; here are only the shapes and
// the checks every reader of a shape must make.
package protocol
