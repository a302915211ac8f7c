package api

import (
	"errors"
	"io/fs"
	"net/http"
	"os"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Releases are the agent releases the controller serves
// (reconciler/agentrelease): OpenFile opens one file of one release, or
// fails with an error wrapping fs.ErrNotExist or naming why the file is
// not served.
type Releases interface {
	OpenFile(version, name string) (*os.File, error)
}

// release handles GET /v1/agent-releases/{version}/{name}: a file of an
// agent release, for an enrolled endpoint's agent to update itself.
func (s *Server) release(w http.ResponseWriter, r *http.Request, ep store.Enrollment) error {
	if s.cfg.Releases == nil {
		return errorf(protocol.CodeNotFound, "this controller serves no agent releases (patchd serve --agent-releases DIR)")
	}
	version, name := r.PathValue("version"), r.PathValue("name")
	f, err := s.cfg.Releases.OpenFile(version, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errorf(protocol.CodeNotFound, "agent release %.40q has no file %.80q", version, name)
		}
		return errorf(protocol.CodeNotFound, "%.300s", err.Error())
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// A binary takes longer than a request's usual minute on a slow link.
	s.extendDeadlines(w, sizeAllowance(st.Size()))
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, st.ModTime(), f)
	return nil
}
