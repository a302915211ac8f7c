package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// statements holds the prepared statements of both pools, by pool and
// query, because SQLite parses a statement on every call otherwise: the
// parse was a fifth of the controller's CPU while a fleet reported at once.
// database/sql prepares a statement once per connection and reuses it.
type statements struct {
	mu    sync.Mutex // guards byKey
	byKey map[stmtKey]*sql.Stmt
	// unprepared counts write statements run without a prepared statement
	// (not registered with writeQuery); tests keep it at zero.
	unprepared atomic.Int64
}

type stmtKey struct {
	pool  *sql.DB
	query string
}

// prepare prepares queries on pool, outside any transaction.
func (s *statements) prepare(ctx context.Context, pool *sql.DB, queries []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey == nil {
		s.byKey = make(map[stmtKey]*sql.Stmt)
	}
	for _, q := range queries {
		k := stmtKey{pool, q}
		if _, ok := s.byKey[k]; ok {
			continue
		}
		st, err := pool.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %.60q: %w", q, err)
		}
		s.byKey[k] = st
	}
	return nil
}

// lookup returns the statement prepare made for query on pool, or nil.
func (s *statements) lookup(pool *sql.DB, query string) *sql.Stmt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[stmtKey{pool, query}]
}

// close closes every prepared statement.
func (s *statements) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, st := range s.byKey {
		errs = append(errs, st.Close())
	}
	s.byKey = nil
	return errors.Join(errs...)
}

// writeQueries are the statements of write transactions, prepared on the
// write connection when the store opens; readQueries those of the read
// pool. Preparing on demand is not possible for writes: the write pool's
// one connection is busy with the transaction that would need it.
var writeQueries, readQueries []string

// writeQuery registers a statement of write transactions.
func writeQuery(q string) string {
	writeQueries = append(writeQueries, q)
	return q
}

// readQuery registers a statement of the read pool.
func readQuery(q string) string {
	readQueries = append(readQueries, q)
	return q
}
