package reconciler

// The admin token of a patchd started without a secrets file: made on
// the first start, kept in the store as the named admin token
// "bootstrap-admin" (only its hash) and in the data directory as the
// file admin-token (mode 0600), which patchctl reads with --token-file.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/api"
	"github.com/patchline/patchline/reconciler/store"
)

// BootstrapAdminToken names the admin token patchd makes on its first
// start without a secrets file.
const BootstrapAdminToken = "bootstrap-admin"

// AdminTokenFile is the bootstrap admin token's file in the data
// directory.
const AdminTokenFile = "admin-token"

// bootstrapStore is what making the bootstrap admin token needs of the
// store.
type bootstrapStore interface {
	CreateToken(ctx context.Context, t store.Token) error
	Tokens(ctx context.Context) ([]store.Token, error)
}

// bootstrapAdmin makes the bootstrap admin token when the store has none:
// it stores its hash, then writes its secret to the data directory's
// admin-token file (atomically, mode 0600), and says where the file is
// and how to use it, in the log and on Config.Notice. A token already
// stored is left alone, and so is its file; when this data directory
// has no file (another replica on the database made the token, or the
// file was removed), the log says where the token came from and what to
// do.
func (c *Controller) bootstrapAdmin(ctx context.Context, db bootstrapStore) error {
	path := filepath.Join(c.cfg.DataDir, AdminTokenFile)
	tokens, err := db.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	for _, t := range tokens {
		if t.Name == BootstrapAdminToken {
			c.bootstrapAdminKept(t, path)
			return nil
		}
	}
	secret, hash, err := api.NewTokenSecret()
	if err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	t := store.Token{
		Name: BootstrapAdminToken, Hash: hash[:], Scopes: []protocol.Scope{protocol.ScopeAdmin},
		CreatedAt: c.clock.Now(), CreatedBy: "patchd " + c.cfg.ReplicaName,
	}
	// The store first: a file whose token was never stored would be a
	// token that does not work. A crash between the two leaves a token
	// without its file, which the next start reports (bootstrapAdminKept).
	if err := db.CreateToken(ctx, t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Another replica made it meanwhile.
			c.bootstrapAdminKept(t, path)
			return nil
		}
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("bootstrap admin token: the token %q is stored but its file cannot be written: %w; "+
			"revoke it (patchctl tokens revoke %s) with a secrets file's admin token, or start on a new store", BootstrapAdminToken, err, BootstrapAdminToken)
	}
	c.log.Info("no secrets file: made an admin token; use it with patchctl --token-file", "token", BootstrapAdminToken, "file", path)
	fmt.Fprintf(c.cfg.Notice, "patchd: no --secrets file: the admin token %q is in %s (mode 0600). Use it with:\n"+
		"  patchctl status --controller %s --token-file %s\n"+
		"and make an enrollment token for a client's agents with:\n"+
		"  patchctl enroll create --client CLIENT --controller %s --token-file %s\n",
		BootstrapAdminToken, path, c.apiURL(), path, c.apiURL(), path)
	return nil
}

// apiURL is the URL patchctl reaches the API on, as patchd listens.
func (c *Controller) apiURL() string {
	if c.cfg.TLSCert != "" {
		return "https://" + c.Addr()
	}
	return "http://" + c.Addr()
}

// bootstrapAdminKept logs where the stored bootstrap admin token t is:
// in path, or, when the file is not there or holds another token, where
// it came from and what to do.
func (c *Controller) bootstrapAdminKept(t store.Token, path string) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil && tokenFileHolds(data, t):
		if t.RevokedAt.IsZero() {
			c.log.Info("the admin token is in its file; use it with patchctl --token-file", "token", t.Name, "file", path)
		} else {
			c.log.Warn("the admin token in the data directory is revoked: use another admin token, or a secrets file's (--secrets)", "token", t.Name, "file", path)
		}
	case err == nil:
		c.log.Warn("the data directory's admin token file does not hold the stored admin token; patchd does not make another",
			"token", t.Name, "file", path, "made_by", t.CreatedBy)
	case errors.Is(err, fs.ErrNotExist) && c.cfg.Database != "":
		c.log.Info("the admin token was made by another patchd on this database; its file is in that patchd's data directory",
			"token", t.Name, "made_by", t.CreatedBy, "file", AdminTokenFile)
	case errors.Is(err, fs.ErrNotExist):
		c.log.Warn("the admin token's file is gone from the data directory and patchd does not make another: "+
			"use another admin token, or start with --secrets FILE whose adminToken manages tokens (patchctl tokens create)",
			"token", t.Name, "file", path)
	default:
		c.log.Warn("cannot read the admin token's file", "file", path, "err", err)
	}
}

// tokenFileHolds reports whether a token file's content is t's secret.
func tokenFileHolds(data []byte, t store.Token) bool {
	h := sha256.Sum256(bytes.TrimSpace(data))
	return subtle.ConstantTimeCompare(h[:], t.Hash) == 1
}
