// Package source is the controller's view of the fleet repository in Git,
// and the one place in the module that reads it: patchctl reads revisions
// and history through it too.
//
// It does four things, all with go-git and none by running the git binary:
//
//   - Fetch: a [Source] keeps a bare clone of one branch of a remote fleet
//     repo under the controller's data directory and fetches only what is
//     new. [Source.Watch] runs that on an interval and at once when a webhook
//     signals a push, coalescing bursts of signals into one fetch.
//     [WatchDir] is the local mode: it watches the refs of a working
//     repository on disk with fsnotify and reports when a commit lands.
//   - Verify: [Verify] decides whether a candidate head may replace the last
//     applied revision. It refuses history rewrites and, when signing is
//     required, any commit in between that is not signed by an allowed
//     key of its committer. A refusal is a [*RefusedError], so the controller can keep
//     running the last good revision and say why.
//   - Read: [ReadRevision] reads the files of a revision from its commit's
//     tree, and [LoadRevision] hands the ones a [Loader] wants to it. The
//     loader (package schema/loader) evaluates the CUE; this package knows
//     nothing of CUE, and the loader nothing of Git. [FirstParents] lists
//     the commits of a branch as they landed, for the policy history, and
//     [LastChange] finds the commit that last changed a line a decision
//     cites.
//   - Webhooks: [ParseWebhookSignature] finds a push notification's
//     signature in its headers, before its body is read, and
//     [WebhookSignature.Verify] checks, while reading the body, that it
//     really came from the forge that holds the shared secret (GitHub,
//     Gitea, GitLab).
package source
