package api

import (
	"net/netip"
	"testing"
	"time"
)

// TestKeyedBuckets: each key has its own budget; a refilled bucket is
// dropped when a new key comes; at the cap, new keys share one bucket.
func TestKeyedBuckets(t *testing.T) {
	type take struct {
		after time.Duration // the clock moves by this first
		key   string
		want  bool
	}
	tests := []struct {
		name     string
		max      int
		takes    []take
		wantKeys int
	}{
		{name: "keys have their own budgets", max: 10, takes: []take{
			{0, "a", true}, {0, "a", true}, {0, "a", false}, {0, "b", true}, {0, "b", true}, {0, "b", false},
		}, wantKeys: 2},
		{name: "a spent budget refills", max: 10, takes: []take{
			{0, "a", true}, {0, "a", true}, {0, "a", false}, {time.Second, "a", true}, {0, "a", false},
		}, wantKeys: 1},
		{name: "refilled buckets are dropped when a new key comes", max: 10, takes: []take{
			{0, "a", true}, {0, "b", true}, {2 * time.Second, "c", true},
		}, wantKeys: 1},
		{name: "a bucket still refilling is kept", max: 10, takes: []take{
			{0, "a", true}, {0, "a", true}, {1500 * time.Millisecond, "b", true},
		}, wantKeys: 2},
		{name: "at the cap, new keys share one bucket", max: 2, takes: []take{
			{0, "a", true}, {0, "b", true}, {0, "c", true}, {0, "d", true}, {0, "e", false}, {0, "a", true},
		}, wantKeys: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: t0}
			kb := newKeyedBuckets[string](2, 1, tt.max, c.Now)
			for i, tk := range tt.takes {
				c.Advance(tk.after)
				if ok, wait := kb.take(tk.key); ok != tk.want || (!ok && wait <= 0) {
					t.Fatalf("take %d (%s) = %v, %v; want %v, and a wait when refused", i, tk.key, ok, wait, tk.want)
				}
			}
			if got := len(kb.buckets); got != tt.wantKeys {
				t.Errorf("%d keys hold a bucket, want %d", got, tt.wantKeys)
			}
		})
	}
}

// TestAdmission: places are counted by address and in all, and freed.
func TestAdmission(t *testing.T) {
	a1, a2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	type step struct {
		enter bool // enter, or leave
		addr  netip.Addr
		want  admitted
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one address up to its share", []step{{true, a1, in}, {true, a1, in}, {true, a1, addrFull}, {true, a2, in}}},
		{"every place taken", []step{{true, a1, in}, {true, a2, in}, {true, a2, in}, {true, netip.MustParseAddr("192.0.2.3"), allFull}}},
		{"a place freed is taken again", []step{{true, a1, in}, {true, a1, in}, {false, a1, in}, {true, a1, in}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adm := newAdmission(3, 2)
			for i, st := range tt.steps {
				if !st.enter {
					adm.leave(st.addr)
					continue
				}
				if got := adm.enter(st.addr); got != st.want {
					t.Fatalf("step %d: enter(%s) = %d, want %d", i, st.addr, got, st.want)
				}
			}
		})
	}
	adm := newAdmission(3, 2)
	adm.enter(a1)
	adm.leave(a1)
	if len(adm.byAddr) != 0 || adm.total != 0 {
		t.Errorf("after every request left: %d addresses, %d in all; want none", len(adm.byAddr), adm.total)
	}
}
