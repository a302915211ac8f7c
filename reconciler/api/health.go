package api

import (
	"net/http"
)

// The probes' paths. Both answer without credentials, on the API's
// address and on the metrics address, and say little: whether patchd
// serves, and why it is not ready.
const (
	// PathHealthz is liveness: 200 while the process serves HTTP.
	PathHealthz = "/healthz"
	// PathReadyz is readiness: 200 when patchd can take traffic, 503 with
	// the reason when it cannot (its store is failing or not open).
	PathReadyz = "/readyz"
)

// Healthz answers GET /healthz: the process is up and serving.
func Healthz(w http.ResponseWriter, r *http.Request) {
	probeAnswer(w, http.StatusOK, "ok")
}

// Readyz answers GET /readyz with 200, or 503 and the reason ready gives.
func Readyz(ready func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			probeAnswer(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		probeAnswer(w, http.StatusOK, "ok")
	})
}

func probeAnswer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}
