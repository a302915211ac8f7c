package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifications between the replicas on one database, through
// PostgreSQL's LISTEN/NOTIFY: no other service is needed. The store
// sends some itself, inside the write's transaction, so they are
// delivered when (and only if) it commits: NotifyJobs from CreateJobs,
// NotifyEndpoint from Enroll, RevokeEndpoint and DeleteEndpoint,
// NotifyTokens from CreateToken and RevokeToken. The controller sends
// its own kinds with Notify. Every replica, the sender too, receives
// every notification (Listen).
//
// A notification is not stored: one sent while a replica's listening
// connection is down is lost to it, which is why Listen says when it
// connected again.

// Channel is the channel every notification is sent on.
const Channel = "patchline"

// The kinds of notification the store sends; IDs are endpoint ids, none
// for NotifyTokens.
const (
	// NotifyJobs: jobs were created for these endpoints.
	NotifyJobs = "jobs"
	// NotifyEndpoint: these endpoints were enrolled, revoked or deleted.
	NotifyEndpoint = "endpoint"
	// NotifyTokens: an admin API token was created or revoked.
	NotifyTokens = "tokens"
)

// Notification is one notification received: its kind and ids.
type Notification struct {
	Kind string
	IDs  []string
}

// maxPayload keeps a notification's payload under PostgreSQL's limit of
// 8000 bytes; longer lists go in several notifications.
const maxPayload = 7900

// payloads encodes kind and ids as one or more payloads: the kind, then
// each id, one a line. Ids are validated identifiers, never holding a
// line break.
func payloads(kind string, ids []string) []string {
	var out []string
	var b strings.Builder
	b.WriteString(kind)
	n := 0
	for _, id := range ids {
		if n > 0 && b.Len()+1+len(id) > maxPayload {
			out = append(out, b.String())
			b.Reset()
			b.WriteString(kind)
			n = 0
		}
		b.WriteByte('\n')
		b.WriteString(id)
		n++
	}
	return append(out, b.String())
}

// parse decodes a payload made by payloads.
func parse(payload string) Notification {
	kind, rest, _ := strings.Cut(payload, "\n")
	n := Notification{Kind: kind}
	if rest != "" {
		n.IDs = strings.Split(rest, "\n")
	}
	return n
}

const notifyQuery = `SELECT pg_notify($1, $2)`

// notify queues kind's notification of ids in t: sent when t commits.
func (t *wtx) notify(kind string, ids ...string) error {
	for _, p := range payloads(kind, ids) {
		if _, err := t.exec(notifyQuery, Channel, p); err != nil {
			return fmt.Errorf("notify %s: %w", kind, err)
		}
	}
	return nil
}

// Notify sends kind's notification of ids to every replica now.
func (db *DB) Notify(ctx context.Context, kind string, ids ...string) error {
	for _, p := range payloads(kind, ids) {
		if _, err := db.pool.Exec(ctx, notifyQuery, Channel, p); err != nil {
			return fmt.Errorf("notify %s: %w", kind, err)
		}
	}
	return nil
}

// Listen receives every notification on a connection of its own, until
// ctx ends, and calls handle with each, in order, on its goroutine.
// connected is called each time it listens again after its connection
// was lost (not the first time): notifications sent meanwhile were
// missed. A lost connection is made again after a backoff, up to
// maxListenBackoff; logf says why it was lost.
func (db *DB) Listen(ctx context.Context, handle func(Notification), connected func(), logf func(err error, retryIn time.Duration)) {
	failures := 0
	for first := true; ; first = false {
		err := db.listenOnce(ctx, handle, func() {
			failures = 0
			if !first {
				connected()
			}
		})
		if ctx.Err() != nil {
			return
		}
		failures++
		d := min(listenBackoff<<min(failures-1, 6), maxListenBackoff)
		logf(err, d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// The wait before listening again: listenBackoff after the first
// failure, doubling up to maxListenBackoff.
const (
	listenBackoff    = 100 * time.Millisecond
	maxListenBackoff = 5 * time.Second
)

// listenOnce connects, listens and handles notifications until the
// connection fails or ctx ends; it calls listening once LISTEN ran.
func (db *DB) listenOnce(ctx context.Context, handle func(Notification), listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait for notifications: %w", err)
		}
		if n.Channel != Channel {
			continue
		}
		handle(parse(n.Payload))
	}
}
