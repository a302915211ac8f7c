package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/patchline/patchline/schema"
)

// Hook scripts are files of the fleet repository, read at the revision
// being loaded so that the content a job carries is the reviewed one.
// They are read after a client's evaluation, outside the evaluation
// cache: a commit that changes only a script changes the client's
// digest (and so re-plans it) without evaluating its CUE again.

// withScripts returns c with the content and SHA-256 of every hook
// script it names, from files, and the problems of scripts that are
// missing, too large or not text. c itself, which the evaluation cache
// shares, is not changed: a client with hooks is copied. The client is
// nil when a script has a problem; a client without hooks is returned as
// it is.
func withScripts(files map[string][]byte, c *schema.Client) (*schema.Client, []schema.Problem) {
	hooked := c.Hooks != nil
	for i := range c.Rings {
		hooked = hooked || c.Rings[i].Hooks != nil
	}
	if !hooked {
		return c, nil
	}
	out := *c
	out.Rings = append([]schema.Ring(nil), c.Rings...)
	var problems []schema.Problem
	sums := map[string]string{}
	seen := map[*schema.Hooks]*schema.Hooks{}
	resolve := func(hk *schema.Hooks) *schema.Hooks {
		if hk == nil {
			return nil
		}
		if r, ok := seen[hk]; ok {
			return r
		}
		r := *hk
		for _, s := range []**schema.Script{&r.Pre, &r.Post} {
			if *s == nil {
				continue
			}
			sc := **s
			if !isScript(sc.Path) {
				// The evaluation reported the path.
				continue
			}
			if msg := scriptProblem(files, sc.Path); msg != "" {
				p := schema.Problem{Pos: sc.Pos, Level: schema.LevelError, Message: msg}
				if strings.HasPrefix(sc.Pos.File, c.Dir+"/") {
					p.Client = c.ID
				}
				problems = append(problems, p)
			} else {
				b := files[sc.Path]
				sum := sha256.Sum256(b)
				sc.Content, sc.SHA256 = string(b), hex.EncodeToString(sum[:])
				sums[sc.Path] = sc.SHA256
			}
			*s = &sc
		}
		seen[hk] = &r
		return &r
	}
	out.Hooks = resolve(c.Hooks)
	for i := range out.Rings {
		out.Rings[i].Hooks = resolve(c.Rings[i].Hooks)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	// The digest covers each script once, in path order, however many
	// rings share it.
	h := sha256.New()
	h.Write([]byte(c.Digest))
	for _, p := range slices.Sorted(maps.Keys(sums)) {
		fmt.Fprintf(h, "\nscript %q %s", p, sums[p])
	}
	out.Digest = hex.EncodeToString(h.Sum(nil))
	return &out, nil
}

// scriptProblem says what keeps the file at path from being a hook
// script, "" when nothing does.
func scriptProblem(files map[string][]byte, path string) string {
	b, ok := files[path]
	switch {
	case !ok:
		return fmt.Sprintf("hook script %q: no such file in the fleet repository at this revision: add it, or fix the path", path)
	case len(b) > schema.MaxScriptBytes:
		return fmt.Sprintf("hook script %q: %d bytes, more than the %d KiB a script may have (it travels in every job)", path, len(b), schema.MaxScriptBytes>>10)
	case len(b) == 0:
		return fmt.Sprintf("hook script %q: the file is empty", path)
	case !utf8.Valid(b) || strings.ContainsRune(string(b), 0):
		return fmt.Sprintf("hook script %q: not text (a script must be UTF-8 without NUL bytes)", path)
	}
	return ""
}
