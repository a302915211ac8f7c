package readme

import (
	"fmt"
	"regexp"
	"strings"
)

// block is one fenced code block of a Markdown file.
type block struct {
	lang string
	// line is the line of the opening fence, from 1.
	line int
	// lines are the block's lines, without the fence's indentation.
	lines []string
}

// fence opens or closes a fenced block: its indentation, its backticks
// and the language after them.
var fence = regexp.MustCompile("^( *)(```+)\\s*([^`\\s]*)[^`]*$")

// fencedBlocks returns the fenced blocks of md in order; an unclosed
// fence is an error.
func fencedBlocks(md string) ([]block, error) {
	var out []block
	var cur *block
	var indent, ticks string
	for i, l := range strings.Split(md, "\n") {
		m := fence.FindStringSubmatch(l)
		if cur == nil {
			if m != nil {
				cur = &block{lang: m[3], line: i + 1}
				indent, ticks = m[1], m[2]
			}
			continue
		}
		if m != nil && m[3] == "" && len(m[2]) >= len(ticks) {
			out = append(out, *cur)
			cur = nil
			continue
		}
		cur.lines = append(cur.lines, strings.TrimPrefix(l, indent))
	}
	if cur != nil {
		return out, fmt.Errorf("line %d: the ``` block never ends", cur.line)
	}
	return out, nil
}

// command is one command line of a block.
type command struct {
	// line is its first line in the Markdown file.
	line  int
	words []string
	// output, for a console block, is what the README shows it prints.
	output []string
}

// commands returns the commands of a sh, bash or console block. A line
// ending in a backslash goes on; in a console block only lines after
// "$ " are commands, the lines up to the next one what it prints.
// Commands joined by |, ;, && or || are separate; redirections and
// comments are left out.
func commands(b block) ([]command, error) {
	var out []command
	console := b.lang == "console"
	for i := 0; i < len(b.lines); i++ {
		l := b.lines[i]
		if console {
			rest, ok := strings.CutPrefix(l, "$ ")
			if !ok {
				if len(out) == 0 {
					if strings.TrimSpace(l) != "" {
						return nil, fmt.Errorf("line %d: a console block starts with a command after \"$ \"", b.line+1+i)
					}
					continue
				}
				out[len(out)-1].output = append(out[len(out)-1].output, l)
				continue
			}
			l = rest
		}
		start := b.line + 1 + i
		for strings.HasSuffix(l, `\`) && i+1 < len(b.lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + b.lines[i]
		}
		cmds, err := splitShell(l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", start, err)
		}
		for _, words := range cmds {
			out = append(out, command{line: start, words: words})
		}
	}
	return out, nil
}

// splitShell splits a line of shell into commands and their words, the
// way sh would before expanding anything: quotes group and are removed,
// $(...) stays part of its word, a # starting a word starts a comment,
// and a redirection goes with its target.
func splitShell(s string) ([][]string, error) {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord, redirect := false, false
	endWord := func() {
		if !inWord {
			return
		}
		if redirect {
			redirect = false
		} else {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	endCommand := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
		case c == '#' && !inWord:
			endCommand()
			return cmds, nil
		case c == '|' || c == ';' || c == '&':
			if c == '&' && i+1 < len(s) && s[i+1] == '>' {
				endWord()
				redirect, i = true, i+1
				continue
			}
			endCommand()
			if i+1 < len(s) && (s[i+1] == '|' || s[i+1] == '&') {
				i++
			}
		case c == '>' || c == '<':
			// 2>, >>, >&2: the target is the next word, or this one.
			if inWord && w.Len() == 1 && (w.String() == "1" || w.String() == "2") {
				w.Reset()
				inWord = false
			}
			endWord()
			for i+1 < len(s) && (s[i+1] == '>' || s[i+1] == '&') {
				i++
			}
			redirect = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unclosed ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+j])
			inWord, i = true, i+1+j
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				w.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, fmt.Errorf("unclosed \" in %q", s)
			}
			inWord, i = true, j
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(s); j++ {
				if s[j] == '(' {
					depth++
				}
				if s[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j == len(s) {
				return nil, fmt.Errorf("unclosed $( in %q", s)
			}
			w.WriteString(s[i : j+1])
			inWord, i = true, j
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	endCommand()
	return cmds, nil
}
