package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	body := http.MaxBytesReader(w, r.Body, protocol.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err, dec.InputOffset())
	}
	// Read to the end so trailing data and an oversized body are caught.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return errorf(protocol.CodeInvalid, "offset %d: data after the JSON value", dec.InputOffset())
		}
		return bodyError(err, dec.InputOffset())
	}
	return nil
}

// bodyError classifies an error from reading a request body; offset is
// how far the body was read.
func bodyError(err error, offset int64) *apiError {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errorf(protocol.CodeTooLarge, "request body is over %d bytes", tooLarge.Limit)
	}
	return errorf(protocol.CodeInvalid, "malformed JSON: %v", jsonProblem(err, offset))
}

// jsonProblem rewrites an encoding/json error to name the offset or field
// it happened at; offset is how far the decoder read, for errors that do
// not say.
func jsonProblem(err error, offset int64) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("body ends in the middle of a value")
	case errors.As(err, &syn):
		return fmt.Errorf("offset %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("field %s: cannot use a JSON %s as %s", field, typ.Value, typ.Type)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s", f)
	}
	return fmt.Errorf("near offset %d: %s", offset, strings.TrimPrefix(err.Error(), "json: "))
}
