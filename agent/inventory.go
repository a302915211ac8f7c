package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
)

// Inventory returns what the endpoint reports about its updates: b's
// inventory as a report carries it (an empty list, never none), each
// title fitted to the controller's rules for text, so that one vendor's
// stray control character cannot get the whole report refused. It
// contacts no controller; `patch-agent inventory` prints it.
func Inventory(ctx context.Context, b backend.Backend) ([]*protocol.Update, error) {
	ups, err := b.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	if ups == nil {
		ups = []*protocol.Update{}
	}
	for _, u := range ups {
		u.Title = fitText(protocol.TextLine, u.Title, protocol.MaxTitleBytes)
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
// escaped (textsafe.Terminal) so that no control character reaches the
// terminal, or as the JSON list a report carries (FormatJSON).
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
		parts = append(parts, textsafe.Terminal(id))
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
	return textsafe.Terminal(s)
}
