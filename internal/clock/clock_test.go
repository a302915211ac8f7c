package clock

import (
	"testing"
	"time"
)

func TestFakeRunsDueCallsInOrder(t *testing.T) {
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	c := NewFake(start)
	var got []string
	c.AfterFunc(2*time.Hour, func() { got = append(got, "window opens") })
	c.AfterFunc(time.Hour, func() { got = append(got, "soak ends") })
	stopped := c.AfterFunc(90*time.Minute, func() { got = append(got, "stopped") })
	c.AfterFunc(time.Hour, func() { got = append(got, "second at the same time") })
	if !stopped.Stop() {
		t.Fatal("Stop of a pending call = false")
	}
	if stopped.Stop() {
		t.Error("second Stop = true, want false")
	}

	c.Advance(59 * time.Minute)
	if len(got) != 0 {
		t.Fatalf("after 59m ran %v, want nothing", got)
	}
	if next, ok := c.Next(); !ok || !next.Equal(start.Add(time.Hour)) {
		t.Errorf("Next = %v, %v; want %v", next, ok, start.Add(time.Hour))
	}
	c.Advance(2 * time.Hour)
	want := []string{"soak ends", "second at the same time", "window opens"}
	if len(got) != len(want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ran %v, want %v", got, want)
		}
	}
	if c.Pending() != 0 {
		t.Errorf("Pending = %d after everything ran", c.Pending())
	}
	if !c.Now().Equal(start.Add(179 * time.Minute)) {
		t.Errorf("Now = %v", c.Now())
	}
}

func TestFakeAfter(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	ch := c.After(time.Second)
	select {
	case <-ch:
		t.Fatal("After fired before the clock moved")
	default:
	}
	c.Advance(time.Second)
	select {
	case <-ch:
	default:
		t.Fatal("After did not fire once the clock moved")
	}
}
