package loader

import (
	"fmt"
	"strconv"
	"strings"
)

// Bytes is an amount of memory. As a flag (patchd and patchctl's
// --eval-memory) it is a whole number of bytes, optionally followed by
// KiB, MiB or GiB: "512MiB", "1 GiB".
type Bytes int64

// Units of Bytes.
const (
	KiB Bytes = 1 << 10
	MiB Bytes = 1 << 20
	GiB Bytes = 1 << 30
)

// units are the suffixes of Bytes, largest first.
var units = []struct {
	name string
	size Bytes
}{{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"B", 1}}

// String formats b in the largest unit that divides it: "512 MiB".
func (b Bytes) String() string {
	for _, u := range units {
		if b >= u.size && b%u.size == 0 {
			return fmt.Sprintf("%d %s", b/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d B", int64(b))
}

// Set parses a positive amount such as "512MiB", "512 MiB" or "536870912".
func (b *Bytes) Set(s string) error {
	num, unit := strings.TrimSpace(s), Bytes(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.name); ok {
			num, unit = strings.TrimSpace(n), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > int64(1<<62/unit) {
		return fmt.Errorf("invalid amount of memory %q: use a positive whole number with KiB, MiB or GiB, e.g. 512MiB", s)
	}
	*b = Bytes(n) * unit
	return nil
}

// Type names the flag's kind in patchctl's help.
func (b *Bytes) Type() string { return "bytes" }
