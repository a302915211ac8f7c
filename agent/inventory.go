package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/protocol"
)

// Inventory returns what the endpoint reports about its updates: b's
// inventory as a report carries it (an empty list, never none). It
// contacts no controller; `patch-agent inventory` prints it.
func Inventory(ctx context.Context, b backend.Backend) ([]*protocol.Update, error) {
	ups, err := b.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	if ups == nil {
		ups = []*protocol.Update{}
	}
	return ups, nil
}

// Formats of WriteInventory.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// cvesShown is how many CVE ids a row of the text table names.
const cvesShown = 2

// WriteInventory writes updates to w: as a table for a terminal
// (FormatText), in which every text the endpoint's tools supplied is
// escaped so that no control character reaches the terminal, or as the
// JSON list a report carries (FormatJSON).
func WriteInventory(w io.Writer, updates []*protocol.Update, format string) error {
	switch format {
	case FormatJSON:
		b, err := json.MarshalIndent(updates, "", "  ")
		if err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case FormatText:
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "UPDATE\tSOURCE\tCATEGORY\tSEVERITY\tURGENCY\tCVES\tRELEASED\tINSTALLED")
		for _, u := range updates {
			released := "-"
			if !u.Released.IsZero() {
				released = u.Released.UTC().Format("2006-01-02")
			}
			installed := "no"
			if u.Installed {
				installed = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(u.ID), cell(u.Source), cell(u.Category), cell(u.Severity),
				cell(u.Urgency), cveCell(u.CVEs), released, installed)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("inventory format %q: want %s or %s", format, FormatText, FormatJSON)
	}
}

// cveCell names the first CVE ids of a list and counts the others.
func cveCell(ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	parts := make([]string, 0, cvesShown+1)
	for _, id := range ids[:min(len(ids), cvesShown)] {
		parts = append(parts, escape(id))
	}
	if more := len(ids) - cvesShown; more > 0 {
		parts = append(parts, "+"+strconv.Itoa(more))
	}
	return strings.Join(parts, " ")
}

// cell is an escaped table cell; "-" stands for an empty one.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return escape(s)
}

// escape makes endpoint text safe to print on a terminal: control
// characters (C0, DEL, C1; tab and newline included, which would break
// the table) and bytes that are not UTF-8 become \xNN, the Unicode
// controls that reorder or hide text (bidirectional overrides, zero-width
// marks) become \uNNNN, and a backslash is doubled, so an escape in the
// output always stands for one.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r >= 0x7f && r <= 0x9f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case hidesText(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// hidesText reports the format characters a terminal uses to reorder or
// hide text: bidirectional marks, embeddings, overrides and isolates,
// zero-width characters and the byte-order mark.
func hidesText(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200b, r == 0x200c, r == 0x200d, r == 0x200e, r == 0x200f, r == 0x2060, r == 0xfeff:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
