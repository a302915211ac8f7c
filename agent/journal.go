package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
)

// keepFinished is how many acknowledged jobs the journal remembers, so a
// job the controller re-delivers is answered from the record instead of
// being installed again.
const keepFinished = 1000

// File name prefixes in the journal directory.
const (
	ranPrefix     = "job-"
	refusedPrefix = "refused-"
)

// entry is one job in the journal. Its life:
//
//	started   Result == nil            written before the backend installs
//	pending   Result != nil, !Acked    the outbox: sent until acknowledged
//	finished  Acked                    kept only to answer re-deliveries
//
// Writing Result is one atomic file write that both puts the result in the
// outbox and marks the idempotency key finished, so no crash can leave a
// finished install without a result to send.
type entry struct {
	Job string `json:"job"`
	// Key is the job's idempotency key; empty for refusals, whose key is
	// not trusted and must never answer a later job.
	Key       string               `json:"idempotencyKey,omitempty"`
	Seq       int64                `json:"seq,omitempty"`
	Updates   []protocol.JobUpdate `json:"updates,omitempty"`
	StartedAt time.Time            `json:"startedAt"`

	Result     *protocol.ResultRequest `json:"result,omitempty"`
	FinishedAt time.Time               `json:"finishedAt,omitzero"`
	Acked      bool                    `json:"acked,omitempty"`

	// file is the entry's name in the journal directory.
	file string
}

// journal is the agent's durable outbox and its record of finished jobs,
// one JSON file per job under <state dir>/journal. It is owned by the
// agent's run loop and used from that goroutine only, so it has no lock.
type journal struct {
	dir     string
	entries map[string]*entry // by file name
	// keep is how many acknowledged jobs are remembered (keepFinished).
	keep int
}

func openJournal(dir string) (*journal, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{dir: dir, entries: map[string]*entry{}, keep: keepFinished}
	for _, de := range names {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			// A temp file left by a crash mid-write: the rename never
			// happened, so the previous version (or nothing) is current.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		e := &entry{}
		if _, err := readJSON(dir, name, e); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		e.file = name
		j.entries[name] = e
	}
	return j, nil
}

func fileHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

// byKey finds the journal entry of a job that ran with idempotency key key.
func (j *journal) byKey(key string) *entry {
	return j.entries[ranPrefix+fileHash(key)+".json"]
}

// start records that a job is about to be installed.
func (j *journal) start(e *entry) error {
	e.file = ranPrefix + fileHash(e.Key) + ".json"
	if err := writeJSON(j.dir, e.file, e); err != nil {
		return fmt.Errorf("journal: job %s: %w", e.Job, err)
	}
	j.entries[e.file] = e
	return nil
}

// finish stores the result of a started job: it is now in the outbox.
func (j *journal) finish(e *entry, r protocol.ResultRequest, at time.Time) error {
	e.Result = &r
	e.FinishedAt = at
	if err := writeJSON(j.dir, e.file, e); err != nil {
		return fmt.Errorf("journal: job %s: %w", e.Job, err)
	}
	return nil
}

// refuse puts a refusal in the outbox. It is not indexed by idempotency
// key: a refused job ran nothing, and its key may be forged.
func (j *journal) refuse(r protocol.ResultRequest, at time.Time) (*entry, error) {
	e := &entry{Job: r.Job, StartedAt: at, Result: &r, FinishedAt: at}
	e.file = refusedPrefix + fileHash(r.Job) + ".json"
	if err := writeJSON(j.dir, e.file, e); err != nil {
		return nil, fmt.Errorf("journal: refusal of job %s: %w", r.Job, err)
	}
	j.entries[e.file] = e
	return e, nil
}

// ack takes e out of the outbox once the controller has acknowledged its
// result. A refusal is deleted; a job that ran is kept as finished, and the
// oldest finished jobs beyond keep are forgotten.
func (j *journal) ack(e *entry) error {
	if strings.HasPrefix(e.file, refusedPrefix) {
		if err := removeFileDurable(j.dir, e.file); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		delete(j.entries, e.file)
		return nil
	}
	e.Acked = true
	if err := writeJSON(j.dir, e.file, e); err != nil {
		return fmt.Errorf("journal: job %s: %w", e.Job, err)
	}
	return j.prune()
}

func (j *journal) prune() error {
	var done []*entry
	for _, e := range j.entries {
		if e.Acked && strings.HasPrefix(e.file, ranPrefix) {
			done = append(done, e)
		}
	}
	if len(done) <= j.keep {
		return nil
	}
	slices.SortFunc(done, func(a, b *entry) int {
		if c := a.FinishedAt.Compare(b.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(a.file, b.file)
	})
	for _, e := range done[:len(done)-j.keep] {
		if err := removeFileDurable(j.dir, e.file); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		delete(j.entries, e.file)
	}
	return nil
}

// pending lists the outbox, oldest result first.
func (j *journal) pending() []*entry {
	var out []*entry
	for _, e := range j.entries {
		if e.Result != nil && !e.Acked {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *entry) int {
		if c := a.FinishedAt.Compare(b.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(a.file, b.file)
	})
	return out
}

// interrupted lists jobs that were started but never finished: the agent
// stopped while the backend was installing.
func (j *journal) interrupted() []*entry {
	var out []*entry
	for _, e := range j.entries {
		if e.Result == nil {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *entry) int { return strings.Compare(a.file, b.file) })
	return out
}
