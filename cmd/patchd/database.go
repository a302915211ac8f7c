package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/patchline/patchline/internal/signingkey"
	"github.com/patchline/patchline/reconciler"
)

// databaseFlags reads the files of --database-password-file and
// --signing-key into cfg, and refuses the flags that do not go with
// --database (which Config checks for the rest).
func databaseFlags(cfg *reconciler.Config, passwordFile, signingKey string) error {
	switch {
	case cfg.Database == "" && passwordFile != "":
		return errors.New("--database-password-file goes with --database")
	case cfg.Database == "" && signingKey != "":
		return errors.New("--signing-key goes with --database; the embedded store keeps its key in --data-dir (job-signing-key.pem)")
	case cfg.Database == "":
		return nil
	}
	if passwordFile != "" {
		b, err := readSecret(passwordFile)
		if err != nil {
			return fmt.Errorf("--database-password-file: %w", err)
		}
		// One line; its line break is not part of the password.
		cfg.DatabasePassword = strings.TrimRight(string(b), "\r\n")
		if cfg.DatabasePassword == "" {
			return fmt.Errorf("--database-password-file: %s is empty", passwordFile)
		}
	}
	if signingKey != "" {
		key, err := signingkey.Load(signingKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		cfg.SigningKey = key
	}
	return nil
}

// readSecret reads a file that holds a secret, refusing one that group or
// others may read.
func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Windows reports made-up permission bits; there the file's ACL is the
	// operator's business.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s: mode %04o lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	return os.ReadFile(path)
}
