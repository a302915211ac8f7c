package fleetsim

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// plainEvery spaces progress lines when the output is not a terminal.
const plainEvery = 5 * time.Second

// progress shows the simulation's progress: on a terminal one line redrawn
// in place, elsewhere (a log, CI) a plain line every few seconds.
type progress struct {
	w        io.Writer
	terminal bool
	last     time.Time
	width    int
}

func newProgress(w io.Writer, terminal bool) *progress {
	return &progress{w: w, terminal: terminal}
}

func (p *progress) draw(line string) {
	if p.w == nil {
		return
	}
	if !p.terminal {
		if time.Since(p.last) < plainEvery && !strings.HasSuffix(line, "converged") {
			return
		}
		p.last = time.Now()
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(0, p.width-len(line))
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// done ends the redrawn line.
func (p *progress) done() {
	if p.w != nil && p.terminal && p.width > 0 {
		fmt.Fprintln(p.w)
	}
}
