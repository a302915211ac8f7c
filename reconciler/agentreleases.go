package reconciler

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/patchline/patchline/reconciler/agentrelease"
)

// releaseOffer decides which agent versions the controller offers
// (plan.Options.AgentReleases): those whose directory under
// --agent-releases is complete and signed. It logs each version's
// verdict when it changes, so a missing or unsigned release is in the log
// once, not at every re-plan.
type releaseOffer struct {
	dir *agentrelease.Dir // nil without --agent-releases
	log *slog.Logger

	mu   sync.Mutex // guards last
	last map[string]string
}

// openReleases opens the release directory dir, or returns an offer of
// nothing when dir is "".
func openReleases(dir string, log *slog.Logger) (*releaseOffer, error) {
	o := &releaseOffer{log: log, last: map[string]string{}}
	if dir == "" {
		return o, nil
	}
	d, err := agentrelease.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("--agent-releases: %w", err)
	}
	o.dir = d
	return o, nil
}

var errNoReleases = errors.New("this controller serves no agent releases: start patchd with --agent-releases DIR")

// check is plan.Options.AgentReleases.
func (o *releaseOffer) check(version string) error {
	err := errNoReleases
	if o.dir != nil {
		err = o.dir.Check(version)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	o.mu.Lock()
	prev, seen := o.last[version]
	o.last[version] = msg
	o.mu.Unlock()
	switch {
	case seen && prev == msg:
	case err != nil:
		o.log.Error("agent release not offered; endpoints asked to run it wait", "version", version, "err", err)
	default:
		o.log.Info("agent release offered", "version", version)
	}
	return err
}

func (o *releaseOffer) close() {
	if o.dir != nil {
		o.dir.Close()
	}
}
