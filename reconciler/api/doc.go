// Package api is the controller's HTTP API: the agent routes (enroll,
// inventory report, job long-poll, job result), the admin routes (status,
// state export, audit log) and the Git webhook that makes the controller
// fetch at once.
//
// The controller builds a [Server] from a [Config] and mounts
// [Server.Handler]. The seam between them is small:
//
//   - the API writes to the store and then calls [Events] so the controller
//     can re-plan what the write touched;
//   - after the controller stores new jobs it calls [Server.Notify] with
//     their endpoints, which wakes the agents waiting in a long-poll;
//   - on shutdown it calls [Server.Drain] before http.Server.Shutdown, so
//     waiting long-polls answer at once instead of holding Shutdown up.
//
// Agents authenticate with the node key they generated at enrollment
// ("Authorization: Bearer <node key>" plus the X-Patchline-Endpoint header);
// the store keeps only its hash. Admin routes take the admin token from the
// secrets file (see [LoadSecrets]). Every error answer is a protocol.ErrorBody
// whose code maps to the HTTP status, so the agent can tell a final 4xx from
// a retryable 5xx.
package api
