package run

import (
	"fmt"

	"github.com/patchline/patchline/protocol"
)

// RefuseJob checks every update of a job before anything of it runs.
// check says why the backend refuses an update (a name or version its tool
// could read as something else: an option, a pattern, an operation), or
// nil. When it refuses any update, RefuseJob returns a failed Result for
// each, the refused ones saying why and the others that they were not
// run, and the backend must run no command for the job: a job carrying
// such text was not built from what its endpoint reported, so none of it
// is trusted. When it refuses none, RefuseJob returns nil.
func RefuseJob(updates []*protocol.Update, check func(*protocol.Update) error) []Result {
	errs := make([]error, len(updates))
	first := -1
	for i, u := range updates {
		if errs[i] = check(u); errs[i] != nil && first < 0 {
			first = i
		}
	}
	if first < 0 {
		return nil
	}
	results := make([]Result, len(updates))
	for i, u := range updates {
		results[i].Update = u.ID
		if errs[i] != nil {
			results[i].Error = errs[i].Error()
		} else {
			results[i].Error = fmt.Sprintf("not run: update %q of this job was refused", updates[first].ID)
		}
	}
	return results
}
