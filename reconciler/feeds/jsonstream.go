package feeds

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// ctxEvery is how many records a parser reads between two looks at its
// context: often enough that cancelling a 2 GB parse takes effect at once,
// rarely enough to cost nothing.
const ctxEvery = 1024

// jsonStream walks one JSON document token by token, decoding only the
// values a parser asks for, one at a time, so that memory follows the
// largest single record rather than the document. Its errors are
// *ParseError values naming the file, the byte offset and the JSON path.
type jsonStream struct {
	name string
	dec  *json.Decoder
}

func newJSONStream(name string, r io.Reader) *jsonStream {
	return &jsonStream{name: name, dec: json.NewDecoder(r)}
}

// fail builds a *ParseError at the decoder's position.
func (s *jsonStream) fail(path string, err error) error {
	return &ParseError{File: s.name, Offset: s.dec.InputOffset(), Path: path, Err: err}
}

// failAt builds a *ParseError at a given offset.
func (s *jsonStream) failAt(offset int64, path string, format string, args ...any) error {
	return &ParseError{File: s.name, Offset: offset, Path: path, Err: fmt.Errorf(format, args...)}
}

// wrap turns an error of the decoder into a *ParseError, taking the
// offset and the field path from it when it has them.
func (s *jsonStream) wrap(path string, err error) error {
	var (
		pe  *ParseError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
		off = s.dec.InputOffset()
	)
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = errors.New("unexpected end of file (truncated?)")
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
		if te.Field != "" {
			path = joinPath(path, te.Field)
		}
		err = fmt.Errorf("a JSON %s where the format has %s", te.Value, jsonKind(te.Type))
	}
	return &ParseError{File: s.name, Offset: off, Path: path, Err: err}
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// delim reads the next token and requires it to be want.
func (s *jsonStream) delim(path string, want json.Delim) error {
	tok, err := s.dec.Token()
	if err != nil {
		return s.wrap(path, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		kind := map[json.Delim]string{'{': "an object", '[': "an array", '}': "the end of an object", ']': "the end of an array"}[want]
		return s.fail(path, fmt.Errorf("expected %s, found %s", kind, describeToken(tok)))
	}
	return nil
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(t))
	case string:
		return fmt.Sprintf("the string %q", t)
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v", t)
	}
}

// more reports whether the current object or array has another member.
func (s *jsonStream) more() bool { return s.dec.More() }

// key reads an object's next key.
func (s *jsonStream) key(path string) (string, error) {
	tok, err := s.dec.Token()
	if err != nil {
		return "", s.wrap(path, err)
	}
	k, ok := tok.(string)
	if !ok {
		return "", s.fail(path, fmt.Errorf("expected a key, found %s", describeToken(tok)))
	}
	return k, nil
}

// decode decodes the next value into v.
func (s *jsonStream) decode(path string, v any) error {
	if err := s.dec.Decode(v); err != nil {
		return s.wrap(path, err)
	}
	return nil
}

// skip reads past the next value token by token, so that skipping a large
// array never holds it.
func (s *jsonStream) skip(path string) error {
	depth := 0
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return s.wrap(path, err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// end requires that nothing but white space follows the document.
func (s *jsonStream) end() error {
	tok, err := s.dec.Token()
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return s.wrap("", err)
	}
	return s.fail("", fmt.Errorf("%s after the end of the document", describeToken(tok)))
}

// once records the top-level keys a parser has seen, refusing a key that
// appears twice (which would make the file mean two things).
type once map[string]bool

func (o once) see(s *jsonStream, key string) error {
	if o[key] {
		return s.fail(key, errors.New("appears twice"))
	}
	o[key] = true
	return nil
}

// missing returns the first of keys not seen.
func (o once) missing(keys ...string) (string, bool) {
	for _, k := range keys {
		if !o[k] {
			return k, true
		}
	}
	return "", false
}

// decompressed returns r itself, or a reader of its decompressed content
// when it starts with the gzip magic number. Feeds are recognised by
// content rather than by file name, so a server that decompressed a .gz
// on the way (Content-Encoding) does not break the feed.
func decompressed(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return zr, nil
}

// checkCtx looks at ctx every ctxEvery records.
func checkCtx(ctx context.Context, n int) error {
	if n%ctxEvery == 0 {
		return ctx.Err()
	}
	return nil
}
