package reconciler

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/patchline/patchline/internal/signingkey"
	"github.com/patchline/patchline/reconciler/store/postgres"
)

// openPostgres opens the store in the PostgreSQL database Config.Database
// names (postgres.Open brings its schema up to date and refuses one newer
// than this patchd knows) and checks Config.SigningKey against the key
// the database records (checkSigningKey). The data directory's key and
// SQLite files play no part.
func (c *Controller) openPostgres(ctx context.Context) (controllerStore, func() writeStats, ed25519.PrivateKey, error) {
	if err := checkDataDirKey(c.cfg.DataDir, c.cfg.SigningKey); err != nil {
		return nil, nil, nil, err
	}
	var opts []postgres.Option
	if c.cfg.DatabasePassword != "" {
		opts = append(opts, postgres.WithPassword(c.cfg.DatabasePassword))
	}
	start := time.Now()
	db, err := postgres.Open(ctx, c.cfg.Database, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	key := c.cfg.SigningKey
	if err := checkSigningKey(ctx, db, key, c.clock.Now()); err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	// Replicas share the database: only the holder of the leader lease
	// makes the leader's writes (leader.go).
	db.EnableFencing()
	c.lease = db
	// The connection string is not logged: it may hold a password.
	c.log.Debug("store opened in PostgreSQL", "took", time.Since(start), "signing_key", signingkey.Fingerprint(key.Public().(ed25519.PublicKey)))
	return db, postgresStats(db), key, nil
}

// keyRecorder is the store's record of the controller's job-signing key
// (postgres.DB.RecordSigningKey).
type keyRecorder interface {
	// RecordSigningKey records pub unless a key is recorded already, and
	// returns the key recorded and when it was.
	RecordSigningKey(ctx context.Context, pub ed25519.PublicKey, at time.Time) (ed25519.PublicKey, time.Time, error)
}

// checkSigningKey records key's public half in the store on the first
// start and refuses a key other than the one recorded: agents pin the key
// their controller gave them at enrollment and refuse jobs signed by
// another, so every patchd on a database must sign with the same one.
func checkSigningKey(ctx context.Context, db keyRecorder, key ed25519.PrivateKey, now time.Time) error {
	pub := key.Public().(ed25519.PublicKey)
	recorded, since, err := db.RecordSigningKey(ctx, pub, now)
	if err != nil {
		return err
	}
	if !pub.Equal(recorded) {
		return fmt.Errorf("the job-signing key given with --signing-key (public key %s) is not the key this database's controller signs with "+
			"(public key %s, recorded %s): agents pin that key and would refuse every job signed with another. "+
			"Give this patchd the key file every other patchd on the database uses",
			signingkey.Fingerprint(pub), signingkey.Fingerprint(recorded), since.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkDataDirKey refuses a data directory that holds a job-signing key
// other than key: the agents that enrolled with the embedded store in it
// pinned that key, and a database whose patchd signs with another one
// (say, a key made anew when the store moved to PostgreSQL) would have
// every job they get refused.
func checkDataDirKey(dir string, key ed25519.PrivateKey) error {
	path := filepath.Join(dir, signingKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	old, err := signingkey.Parse(data)
	if err != nil || !old.Equal(key) {
		return fmt.Errorf("the data directory holds the job-signing key %s of an embedded store, and it is not the key given with --signing-key: "+
			"the agents that enrolled with it pinned it and would refuse every job signed with another. "+
			"Give --signing-key %s, or start with a data directory of its own", path, path)
	}
	return nil
}
