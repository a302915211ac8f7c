package store

import (
	"cmp"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/patchline/patchline/protocol"
)

// Verified counts the unknown results of one job by what the inventory the
// agent sent after the interruption showed, when the store holds it. Every
// store records unknown results through it, so their notes and the audit
// detail read the same whatever the store.
type Verified struct {
	Installed, Missing int
	// Inventory is the time of the inventory that verified them; zero
	// when none did yet.
	Inventory time.Time
}

// Interrupted dates unknown result r and says in its error what the
// stored inventory shows of it, counting it in v. verifies says whether
// the stored inventory (of time at) is the report the agent sent after the
// interruption or a later one; listed and installed are what it says of
// r's update. A verified result is dated at the inventory's time, else at
// now, for the endpoint's next report to verify.
func (v *Verified) Interrupted(r UpdateResult, verifies bool, at time.Time, listed, installed bool, now time.Time) (time.Time, string) {
	msg := cmp.Or(r.Error, "the agent stopped while installing")
	if !verifies {
		return now, WithNote(msg, "; the endpoint's next inventory report shows whether it was installed")
	}
	v.Inventory = at
	stamp := at.UTC().Format("2006-01-02 15:04 UTC")
	switch {
	case !listed:
		v.Missing++
		return at, WithNote(msg, "; the inventory of "+stamp+" no longer lists it")
	case installed:
		v.Installed++
		return at, WithNote(msg, "; verified installed by the inventory of "+stamp)
	}
	v.Missing++
	return at, WithNote(msg, "; still missing by the inventory of "+stamp)
}

// WithNote appends the controller's note to an agent's error, shortening
// the error (on a UTF-8 boundary) so that the whole stays within the
// bound every reader of the state holds attempt errors to.
func WithNote(msg, note string) string {
	if room := protocol.MaxErrorBytes - len(note); len(msg) > room {
		const more = "…"
		msg = msg[:max(room-len(more), 0)]
		for len(msg) > 0 && !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
		msg += more
	}
	return msg + note
}

// interruptedDetail is the part of a job-result audit entry about the
// job's unknown results: the time of the inventory that shows what the
// interrupted job left, and how many of them it shows installed and still
// missing.
type interruptedDetail struct {
	Inventory time.Time `json:"inventory"`
	Installed int       `json:"installed"`
	Missing   int       `json:"missing"`
}

// JobResultDetail is the detail of a job-result audit entry: how many
// updates succeeded, failed, were refused and have an unknown outcome
// (with what the inventory showed of them, v), and whether the job had
// expired before its result came.
func JobResultDetail(counts map[protocol.Result]int, expired bool, v Verified) (json.RawMessage, error) {
	d := struct {
		Succeeded int `json:"succeeded"`
		Failed    int `json:"failed"`
		Refused   int `json:"refused"`
		Unknown   int `json:"unknown,omitempty"`
		// DeferredByGuard and HookFailed count the updates a guard
		// process kept from starting and those a failing pre script
		// skipped.
		DeferredByGuard int  `json:"deferredByGuard,omitempty"`
		HookFailed      int  `json:"hookFailed,omitempty"`
		Expired         bool `json:"expired,omitempty"`
		// Interrupted splits the unknown results by the inventory the
		// agent sent after the interruption, when the store holds it.
		Interrupted *interruptedDetail `json:"interrupted,omitempty"`
	}{Succeeded: counts[protocol.ResultSucceeded], Failed: counts[protocol.ResultFailed], Refused: counts[protocol.ResultRefused],
		Unknown: counts[protocol.ResultUnknown], DeferredByGuard: counts[protocol.ResultDeferredByGuard], HookFailed: counts[protocol.ResultHookFailed],
		Expired: expired}
	if !v.Inventory.IsZero() {
		d.Interrupted = &interruptedDetail{Inventory: v.Inventory.UTC(), Installed: v.Installed, Missing: v.Missing}
	}
	return json.Marshal(d)
}
