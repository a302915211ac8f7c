package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// apiError is an error a handler answers with: its code gives the status
// and its message goes to the caller as is.
type apiError struct {
	code protocol.Code
	msg  string
	// retryAfter is sent as Retry-After when set.
	retryAfter time.Duration
}

func (e *apiError) Error() string { return string(e.code) + ": " + e.msg }

func errorf(code protocol.Code, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errUnauthorized answers every failed agent authentication alike, so a
// caller cannot tell an unknown endpoint from a wrong node key.
var errUnauthorized = errorf(protocol.CodeUnauthorized, "unknown endpoint or wrong node key")

// storeError turns a store error into what the caller may see: the kinds
// the store marks map to their codes (with the store's message, which names
// only what the caller sent), anything else is internal and returned as is
// for the handler wrapper to log.
func storeError(err error, notFound string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(protocol.CodeNotFound, "%s", notFound)
	case errors.Is(err, store.ErrConflict):
		return errorf(protocol.CodeConflict, "%v", err)
	case errors.Is(err, store.ErrInvalid):
		return errorf(protocol.CodeInvalid, "%v", err)
	}
	return err
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; an error here is the client going away.
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with the error envelope of e.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.code.Status(), protocol.ErrorBody{Error: &protocol.Error{Code: e.code, Message: e.msg}})
}

// decodeJSON reads r's body, at most protocol.MaxBodyBytes, into v. Unknown
// fields and data after the value are refused; errors say where the body
// went wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := protocol.DecodeStrict(http.MaxBytesReader(w, r.Body, protocol.MaxBodyBytes), v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errorf(protocol.CodeTooLarge, "request body is over %d bytes", tooLarge.Limit)
		}
		return errorf(protocol.CodeInvalid, "malformed JSON: %v", err)
	}
	return nil
}
