package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DecodeStrict decodes the one JSON value r holds into v, the way every
// reader of a Patchline document must: unknown fields are refused (a
// misspelt field must not vanish silently) and so is data after the value.
// An error names the offset or field where the input went wrong and wraps
// the reader's own error (an http.MaxBytesError stays visible to
// errors.As).
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err, dec.InputOffset())
	}
	// Read to the end so trailing data and an over-long input are caught.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("offset %d: data after the JSON value", dec.InputOffset())
		}
		return jsonProblem(err, dec.InputOffset())
	}
	return nil
}

// jsonProblem rewrites an encoding/json error to name the offset or field
// it happened at; offset is how far the decoder read, for errors that do
// not say.
func jsonProblem(err error, offset int64) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty input")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("input ends in the middle of a value")
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
	return fmt.Errorf("near offset %d: %w", offset, err)
}
