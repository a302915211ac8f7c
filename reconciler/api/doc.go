// Package api is the controller's HTTP API: the agent routes (enroll,
// inventory report, job long-poll, job result), the admin routes (status,
// state export, audit log, backup, endpoint list, revoke and delete,
// token and enrollment token management) and the Git webhook that makes the controller fetch
// at once.
//
// The controller builds a [Server] from a [Config] and serves
// [Server.HTTPServer], which carries the connection limits (deadlines,
// header size) the routes rely on. The seam between them is small:
//
//   - the API writes to the store and then calls [Events] so the controller
//     can re-plan what the write touched;
//   - after the controller stores new jobs it calls [Server.Notify] with
//     their endpoints, which wakes the agents waiting in a long-poll;
//   - on shutdown it calls [Server.Drain] before http.Server.Shutdown, so
//     waiting long-polls answer at once instead of holding Shutdown up.
//
// An agent enrolls with its client's static secret from the secrets file,
// or with an enrollment token made through the API (kept as its hash,
// checked against the store at each use, so a token made or revoked on
// another replica counts at once); the token's labels become the
// endpoint's and win over its agent's on every report.
//
// Agents authenticate with the node key they generated at enrollment
// ("Authorization: Bearer <node key>" plus the X-Patchline-Endpoint header);
// the store keeps only its hash; a revoked endpoint's key is refused. Admin
// routes take a bearer token: the secrets file's admin token (see
// [LoadSecrets]), which holds every right, or a token made through the API
// and kept in the store as the hash of its secret, with its scopes (read,
// backup, admin; each route names the one it needs) and, for a read token,
// the clients it is limited to. Every error answer is a protocol.ErrorBody
// whose code maps to the HTTP status, so the agent can tell a final 4xx from
// a retryable 5xx.
//
// A caller without credentials costs little: the webhook is refused before
// its body is read unless it carries a signature header, and its body (at
// most 1 MiB) is read through the HMAC without being kept; an enrollment's
// body is at most 64 KiB; both must arrive within 10 s, and only a few
// such requests read at once, fewer still from one address. Enrollments
// are limited per source address, per client and in all, in that order,
// after the body and secret are checked. Refused enrollments and admin
// tokens are logged (rationed) and counted.
package api
