package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sources are the update sources an endpoint may report.
var Sources = []string{"apt", "winget", "windows-update", "choco", "brew"}

// Categories are the update categories an endpoint may report.
var Categories = []string{"security", "critical", "bugfix", "feature", "driver"}

// Severities are the update severities an endpoint may report, lowest
// first; an update may also have no severity.
var Severities = []string{"low", "moderate", "important", "critical"}

// Urgencies are the Debian upload urgencies an apt update may report,
// lowest first (Debian Policy, "Urgency" field).
var Urgencies = []string{"low", "medium", "high", "emergency", "critical"}

// Results are the attempt results an endpoint may report.
var Results = []Result{ResultSucceeded, ResultFailed, ResultRefused, ResultUnknown, ResultDeferredByGuard, ResultHookFailed}

// ResultNames are Results as strings, for messages.
func ResultNames() []string {
	out := make([]string, len(Results))
	for i, r := range Results {
		out[i] = string(r)
	}
	return out
}

// DecodeSnapshot reads a JSON state snapshot and validates it (see Validate). Times
// are RFC 3339; a missing or empty time is the zero time. Unknown fields are
// an error, so a misspelt field does not silently vanish. Errors name the
// field path, as in "endpoints[3].updates[7].severity: ...".
func DecodeSnapshot(r io.Reader) (*Snapshot, error) {
	// The whole document is kept to locate errors; bytes.Buffer grows by
	// doubling, which copies less than io.ReadAll for large snapshots.
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("read state snapshot: %w", err)
	}
	data := buf.Bytes()
	s, err := decodeSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("state snapshot: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("state snapshot: %w", err)
	}
	return s, nil
}

// decodeSnapshot streams the endpoints one at a time, so that a large
// snapshot is never held twice in wire form. The top-level fields are
// listed here by hand; a field added to Snapshot must be added here too.
func decodeSnapshot(data []byte) (*Snapshot, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	fail := func(err error) (*Snapshot, error) { return nil, locate(data, err) }
	if err := expectDelim(dec, '{'); err != nil {
		return fail(err)
	}
	s := &Snapshot{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		switch key, _ := tok.(string); key {
		case "apiVersion":
			if err := dec.Decode(&s.APIVersion); err != nil {
				return fail(err)
			}
		case "generatedAt":
			var t string
			if err := dec.Decode(&t); err != nil {
				return fail(err)
			}
			if s.GeneratedAt, err = parseTime("generatedAt", t); err != nil {
				return nil, err
			}
		case "endpoints":
			if s.Endpoints, err = decodeEndpoints(dec); err != nil {
				if errors.Is(err, errBadValue) {
					return nil, err
				}
				return fail(err)
			}
		default:
			return nil, fmt.Errorf("%s: unknown field", key)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("offset %d: data after the snapshot", dec.InputOffset())
	}
	return s, nil
}

// errBadValue marks an error that already names its field path.
var errBadValue = errors.New("bad value")

func decodeEndpoints(dec *json.Decoder) ([]*Endpoint, error) {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: endpoints: want a list", errBadValue)
	}
	var eps []*Endpoint
	for i := 0; dec.More(); i++ {
		var we wireEndpoint
		if err := dec.Decode(&we); err != nil {
			return nil, err
		}
		ep, err := we.endpoint("endpoints[" + strconv.Itoa(i) + "]")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errBadValue, err)
		}
		eps = append(eps, ep)
	}
	return eps, expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("offset %d: want %q", dec.InputOffset(), want)
	}
	return nil
}

// EncodeSnapshot writes s as indented JSON. The output is deterministic: endpoints
// are written in id order and each endpoint's updates in id order, whatever
// their order in s; s itself is not changed.
func EncodeSnapshot(w io.Writer, s *Snapshot) error {
	out := *s
	out.Endpoints = make([]*Endpoint, len(s.Endpoints))
	for i, ep := range s.Endpoints {
		e := *ep
		e.Updates = slices.Clone(ep.Updates)
		slices.SortStableFunc(e.Updates, func(a, b *Update) int { return strings.Compare(a.ID, b.ID) })
		out.Endpoints[i] = &e
	}
	slices.SortStableFunc(out.Endpoints, func(a, b *Endpoint) int { return strings.Compare(a.ID, b.ID) })
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&out); err != nil {
		return fmt.Errorf("encode state snapshot: %w", err)
	}
	return nil
}

// Validate checks what DecodeSnapshot checks beyond JSON syntax: the API version,
// that every endpoint has an id and a client, that endpoint ids are unique,
// that update ids are present and unique per endpoint, that sources,
// categories, severities and attempt results are known values, and that
// every text an endpoint supplied follows its rule (CheckText) and bound, so
// a snapshot holds no text the agent API would refuse.
func (s *Snapshot) Validate() error {
	if s.APIVersion != SnapshotAPIVersion {
		return fmt.Errorf("apiVersion: got %q, want %q", s.APIVersion, SnapshotAPIVersion)
	}
	seen := make(map[string]int, len(s.Endpoints))
	for i, ep := range s.Endpoints {
		p := "endpoints[" + strconv.Itoa(i) + "]"
		if ep == nil {
			return fmt.Errorf("%s: null endpoint", p)
		}
		if ep.ID == "" {
			return fmt.Errorf("%s.id: missing", p)
		}
		if ep.Client == "" {
			return fmt.Errorf("%s.client: missing", p)
		}
		if err := checkField(p, "id", TextName, MaxIDBytes, ep.ID); err != nil {
			return err
		}
		if err := checkField(p, "client", TextName, MaxIDBytes, ep.Client); err != nil {
			return err
		}
		if j, dup := seen[ep.ID]; dup {
			return fmt.Errorf("%s.id: duplicate endpoint id %q (also endpoints[%d])", p, ep.ID, j)
		}
		seen[ep.ID] = i
		if err := ep.ValidateHost(); err != nil {
			return fmt.Errorf("%s.%w", p, err)
		}
		if ep.Reboot != nil {
			if err := ep.Reboot.Validate(); err != nil {
				return fmt.Errorf("%s.reboot.%w", p, err)
			}
		}
		if err := ep.validateUpdates(p); err != nil {
			return err
		}
	}
	return nil
}

func (ep *Endpoint) validateUpdates(p string) error {
	ids := make(map[string]int, len(ep.Updates))
	for j, u := range ep.Updates {
		up := p + ".updates[" + strconv.Itoa(j) + "]"
		if u == nil {
			return fmt.Errorf("%s: null update", up)
		}
		if u.ID == "" {
			return fmt.Errorf("%s.id: missing", up)
		}
		if err := u.checkText(up); err != nil {
			return err
		}
		if k, dup := ids[u.ID]; dup {
			return fmt.Errorf("%s.id: duplicate update id %q (also updates[%d])", up, u.ID, k)
		}
		ids[u.ID] = j
		// The controller's own agent update may be in a snapshot it
		// exports; a report carrying it is refused by the agent API.
		if !slices.Contains(Sources, u.Source) && u.Source != SourcePatchline {
			return fmt.Errorf("%s.source: unknown source %q (want %s)", up, u.Source, oneOf(Sources))
		}
		// A package manager lists what is installed without categories
		// (dpkg has none); only an update still to install needs one.
		if !slices.Contains(Categories, u.Category) && (u.Category != "" || !u.Installed) {
			return fmt.Errorf("%s.category: unknown category %q (want %s; only an installed package may leave it empty)", up, u.Category, oneOf(Categories))
		}
		if u.Severity != "" && !slices.Contains(Severities, u.Severity) {
			return fmt.Errorf("%s.severity: unknown severity %q (want %s)", up, u.Severity, oneOf(Severities))
		}
		if u.ReleasedFrom != "" && u.ReleasedFrom != ReleasedByVendor && u.ReleasedFrom != ReleasedFirstSeen {
			return fmt.Errorf("%s.releasedFrom: unknown origin %q (want %s or %s)", up, u.ReleasedFrom, ReleasedByVendor, ReleasedFirstSeen)
		}
		if u.Urgency != "" && !slices.Contains(Urgencies, u.Urgency) {
			return fmt.Errorf("%s.urgency: unknown urgency %q (want %s)", up, u.Urgency, oneOf(Urgencies))
		}
		for k, a := range u.Attempts {
			if !slices.Contains(Results, a.Result) {
				return fmt.Errorf("%s.attempts[%d].result: unknown result %q (want %s)", up, k, a.Result, oneOf(ResultNames()))
			}
			if a.Action != ActionInstall && a.Action != ActionRollback {
				return fmt.Errorf("%s.attempts[%d].action: unknown action %.40q (want %q or none)", up, k, a.Action, ActionRollback)
			}
			if err := firstError(
				checkField("", "error", TextLines, MaxErrorBytes, a.Error),
				checkField("", "job", TextName, MaxIDBytes, a.Job),
				checkField("", "ring", TextName, MaxIDBytes, a.Ring),
			); err != nil {
				return fmt.Errorf("%s.attempts[%d].%w", up, k, err)
			}
		}
	}
	return nil
}

// ValidateHost checks what an endpoint says of itself, its hostname, OS
// and labels, by the rules of endpoint text: a TextName each, within
// bounds. Errors name the field: "hostname: ...", `labels["ring"]: ...`.
// It does not require a hostname or an OS family; the agent API does.
func (ep *Endpoint) ValidateHost() error {
	if err := firstError(
		checkField("", "hostname", TextName, MaxHostnameBytes, ep.Hostname),
		checkField("", "os.family", TextName, MaxOSBytes, ep.OS.Family),
		checkField("", "os.version", TextName, MaxOSBytes, ep.OS.Version),
	); err != nil {
		return err
	}
	if len(ep.Labels) > MaxLabels {
		return fmt.Errorf("labels: %d labels, at most %d are accepted", len(ep.Labels), MaxLabels)
	}
	// In key order, so that the same labels always give the same error.
	for _, k := range slices.Sorted(maps.Keys(ep.Labels)) {
		if k == "" || len(k) > MaxLabelKeyBytes {
			return fmt.Errorf("labels: key %.*q must have 1 to %d bytes", MaxLabelKeyBytes, k, MaxLabelKeyBytes)
		}
		if err := CheckText(TextName, k); err != nil {
			return fmt.Errorf("labels: key %q: %w", k, err)
		}
		if err := checkValue(TextName, MaxLabelValueBytes, ep.Labels[k]); err != nil {
			return fmt.Errorf("labels[%q]: %w", k, err)
		}
	}
	return nil
}

// firstError returns the first error of errs that is not nil.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkText checks the text fields of u, the update at path p.
func (u *Update) checkText(p string) error {
	err := firstError(
		checkField(p, "id", TextName, MaxIDBytes, u.ID),
		checkField(p, "name", TextName, MaxIDBytes, u.Name),
		checkField(p, "title", TextLine, MaxTitleBytes, u.Title),
		checkField(p, "version", TextName, MaxIDBytes, u.Version),
		checkField(p, "installedVersion", TextName, MaxIDBytes, u.InstalledVersion),
		checkField(p, "sourcePackage", TextName, MaxIDBytes, u.SourcePackage),
	)
	if err != nil {
		return err
	}
	if u.InFlightJob != nil {
		if err := checkField(p, "inFlightJob", TextName, MaxIDBytes, *u.InFlightJob); err != nil {
			return err
		}
	}
	for k, id := range u.CVEs {
		if !ValidCVE(id) {
			return fmt.Errorf("%s.cves[%d]: %.40q is not a CVE id (want CVE-YYYY-NNNN)", p, k, id)
		}
	}
	for k, id := range u.Requires {
		if err := checkValue(TextName, MaxIDBytes, id); err != nil {
			return fmt.Errorf("%s.requires[%d]: %w", p, k, err)
		}
	}
	return nil
}

// oneOf formats a list as "a, b, c or d".
func oneOf(list []string) string {
	if len(list) == 1 {
		return list[0]
	}
	return strings.Join(list[:len(list)-1], ", ") + " or " + list[len(list)-1]
}

// The wire types decode times as strings, so a bad time can be reported
// with its full path. Each embeds its state type so that every field added
// there is decoded here too; the string fields shadow the time fields of the
// same JSON name.
type (
	endpointFields Endpoint
	updateFields   Update
	attemptFields  Attempt

	wireEndpoint struct {
		endpointFields
		LastSeen string       `json:"lastSeen"`
		Updates  []wireUpdate `json:"updates"`
	}
	wireUpdate struct {
		updateFields
		Released    string        `json:"released"`
		InstalledAt *string       `json:"installedAt"`
		Attempts    []wireAttempt `json:"attempts,omitempty"`
	}
	wireAttempt struct {
		attemptFields
		At string `json:"at"`
	}
)

// endpoint converts a decoded endpoint, p being its path. Its updates share
// one backing array.
func (we *wireEndpoint) endpoint(p string) (*Endpoint, error) {
	ep := Endpoint(we.endpointFields)
	var err error
	if ep.LastSeen, err = parseTime(p+".lastSeen", we.LastSeen); err != nil {
		return nil, err
	}
	if we.Updates == nil {
		return &ep, nil
	}
	ups := make([]Update, len(we.Updates))
	ep.Updates = make([]*Update, len(we.Updates))
	for j := range we.Updates {
		if err := we.Updates[j].decodeInto(&ups[j], p+".updates["+strconv.Itoa(j)+"]"); err != nil {
			return nil, err
		}
		ep.Updates[j] = &ups[j]
	}
	return &ep, nil
}

func (w *wireUpdate) decodeInto(u *Update, p string) error {
	*u = Update(w.updateFields)
	var err error
	if u.Released, err = parseTime(p+".released", w.Released); err != nil {
		return err
	}
	if w.InstalledAt != nil {
		t, err := parseTime(p+".installedAt", *w.InstalledAt)
		if err != nil {
			return err
		}
		u.InstalledAt = &t
	}
	if len(w.Attempts) > 0 {
		u.Attempts = make([]Attempt, len(w.Attempts))
		for k := range w.Attempts {
			u.Attempts[k] = Attempt(w.Attempts[k].attemptFields)
			if u.Attempts[k].At, err = parseTime(p+".attempts["+strconv.Itoa(k)+"].at", w.Attempts[k].At); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseTime(path, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: bad time %q (want RFC 3339, like 2026-11-10T02:00:00Z)", path, s)
	}
	return t, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("offset %d: data after the snapshot", dec.InputOffset())
	}
	return nil
}

// locate turns a JSON error into one that names where it happened: a line
// and column for syntax errors, the field path with array indices for type
// errors and unknown fields.
func locate(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// A streaming decoder counts offsets from the value it was reading;
		// checking the whole document gives the offset from its start.
		var whole *json.SyntaxError
		if errors.As(json.Unmarshal(data, new(json.RawMessage)), &whole) {
			syn = whole
		}
		line, col := lineCol(data, syn.Offset)
		return fmt.Errorf("line %d column %d: %v", line, col, syn)
	}
	if path, msg := findBadField(data); path != "" {
		return fmt.Errorf("%s: %s", path, msg)
	}
	return err
}

func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// findBadField decodes the snapshot again piece by piece, which is slow but
// only runs after an error, to find the path of the first value that does
// not decode.
func findBadField(data []byte) (path, msg string) {
	var top struct {
		APIVersion  string            `json:"apiVersion"`
		GeneratedAt string            `json:"generatedAt"`
		Endpoints   []json.RawMessage `json:"endpoints"`
	}
	if err := strictUnmarshal(data, &top); err != nil {
		return fieldError("", err)
	}
	for i, raw := range top.Endpoints {
		p := "endpoints[" + strconv.Itoa(i) + "]"
		var ep struct {
			endpointFields
			LastSeen string            `json:"lastSeen"`
			Updates  []json.RawMessage `json:"updates"`
		}
		if err := strictUnmarshal(raw, &ep); err != nil {
			return fieldError(p, err)
		}
		for j, raw := range ep.Updates {
			var u wireUpdate
			if err := strictUnmarshal(raw, &u); err != nil {
				return fieldError(p+".updates["+strconv.Itoa(j)+"]", err)
			}
		}
	}
	return "", ""
}

// embedded removes the names of the embedded state types from a field path.
var embedded = strings.NewReplacer("endpointFields.", "", "updateFields.", "", "attemptFields.", "")

// fieldError names the field of a type error or unknown-field error found
// while decoding the value at prefix.
func fieldError(prefix string, err error) (path, msg string) {
	join := func(field string) string {
		if prefix == "" {
			return field
		}
		return prefix + "." + field
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return join(embedded.Replace(typ.Field)), fmt.Sprintf("cannot use a JSON %s as %s", typ.Value, typ.Type)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		return join(name), "unknown field"
	}
	if prefix == "" {
		return "", ""
	}
	return prefix, err.Error()
}
