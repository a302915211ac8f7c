package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
)

// Formats a history renders to.
const (
	FormatText     = "text"
	FormatMarkdown = "markdown"
	FormatJSON     = "json"
)

// Write renders h in format (text, markdown or json) to w.
func (h *History) Write(w io.Writer, format string) error {
	switch format {
	case FormatText:
		return h.WriteText(w)
	case FormatMarkdown:
		return h.WriteMarkdown(w)
	case FormatJSON:
		return h.WriteJSON(w)
	}
	return fmt.Errorf("unknown format %q: want text, markdown or json", format)
}

// WriteText renders h for a terminal, like git log: one block per commit
// with its short hash, date, author and pull request, then each client's
// changes.
func (h *History) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if len(h.Commits) == 0 {
		fmt.Fprintln(bw, "no policy changes")
	}
	for i, c := range h.Commits {
		if i > 0 {
			fmt.Fprintln(bw)
		}
		fmt.Fprintf(bw, "%s  %s  %s <%s>", protocol.ShortRevision(c.Hash), c.Date.UTC().Format("2006-01-02 15:04 UTC"), terminal(c.Author), terminal(c.Email))
		if c.PR != "" {
			fmt.Fprintf(bw, "  PR %s", terminal(c.PR))
		}
		fmt.Fprintf(bw, "\n    %s\n", terminal(c.Subject))
		for _, cc := range c.Clients {
			fmt.Fprintf(bw, "  %s\n", terminal(clientLabel(cc.Client)))
			for _, ch := range cc.Changes {
				fmt.Fprintf(bw, "    %s\n", terminal(ch.String()))
			}
		}
	}
	return bw.Flush()
}

// WriteMarkdown renders h for a ticket, a wiki or a mail to a client's
// auditor.
func (h *History) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, "# Policy history\n\n")
	if len(h.Commits) == 0 {
		fmt.Fprint(bw, "No policy changes.\n")
	}
	for _, c := range h.Commits {
		fmt.Fprintf(bw, "## `%s` %s\n\n", protocol.ShortRevision(c.Hash), markdown(c.Subject))
		fmt.Fprintf(bw, "%s, %s", markdown(c.Author), c.Date.UTC().Format("2006-01-02 15:04 UTC"))
		if c.PR != "" {
			fmt.Fprintf(bw, ", merge of %s", markdown(c.PR))
		}
		fmt.Fprint(bw, "\n\n")
		for _, cc := range c.Clients {
			fmt.Fprintf(bw, "**%s**\n\n", markdown(clientLabel(cc.Client)))
			for _, ch := range cc.Changes {
				fmt.Fprintf(bw, "- `%s` %s\n", ch.Op, markdown(ch.Text))
			}
			fmt.Fprintln(bw)
		}
	}
	return bw.Flush()
}

// WriteJSON renders h as indented JSON.
func (h *History) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(h)
}

func clientLabel(client string) string {
	if client == "" {
		return "whole fleet"
	}
	return client
}

// terminal and markdown keep what commits and policies say (subjects,
// authors, reasons, names) from driving a terminal or turning into markup.
var (
	terminal = textsafe.Terminal
	markdown = textsafe.Markdown
)
