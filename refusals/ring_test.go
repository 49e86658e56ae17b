package refusals

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func entry(i int) Entry {
	return Entry{Time: time.Unix(1764700000, int64(i)*1e6).UTC(), Zone: "wan", Proto: "tcp",
		Src: netip.MustParseAddr("10.250.0.2"), Sport: uint16(40000 + i), Dst: netip.MustParseAddr("192.168.50.10"), Dport: 80, Class: "lan"}
}

func ringSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, name := range []string{current, previous} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// However many entries come, the ring holds at most Max bytes, and the
// newest entries, in order.
func TestRingBounded(t *testing.T) {
	r := &Ring{Dir: t.TempDir(), Max: 4096}
	for i := range 500 {
		if err := r.Append([]Entry{entry(i)}); err != nil {
			t.Fatal(err)
		}
		if n := ringSize(t, r.Dir); n > r.Max {
			t.Fatalf("after %d entries the ring holds %d bytes, more than %d", i+1, n, r.Max)
		}
	}
	es, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) < 10 || es[len(es)-1] != entry(499) {
		t.Fatalf("read %d entries, the last %+v", len(es), es[len(es)-1])
	}
	for i := 1; i < len(es); i++ {
		if es[i].Sport != es[i-1].Sport+1 {
			t.Fatalf("entry %d follows %d", es[i].Sport, es[i-1].Sport)
		}
	}
	// One batch bigger than half the ring keeps its newest entries.
	var big []Entry
	for i := range 100 {
		big = append(big, entry(1000+i))
	}
	if err := r.Append(big); err != nil {
		t.Fatal(err)
	}
	if n := ringSize(t, r.Dir); n > r.Max {
		t.Fatalf("after a big batch the ring holds %d bytes", n)
	}
	if es, _ := r.Read(); es[len(es)-1] != entry(1099) {
		t.Errorf("after a big batch the last entry is %+v", es[len(es)-1])
	}
}

// Follow gives what the ring held, then every entry appended after, across
// rotations, each once.
func TestRingFollow(t *testing.T) {
	r := &Ring{Dir: t.TempDir(), Max: 8192}
	if err := r.Append([]Entry{entry(0), entry(1)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []uint16
	done := make(chan error)
	go func() {
		done <- r.Follow(ctx, time.Millisecond, func(e Entry) {
			mu.Lock()
			got = append(got, e.Sport-40000)
			mu.Unlock()
		})
	}()
	for i := 2; i < 60; i++ { // two rotations at least
		if err := r.Append([]Entry{entry(i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 60 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != 60 {
		t.Fatalf("followed %d entries, want 60: %v", len(got), got)
	}
	for i, s := range got {
		if int(s) != i {
			t.Fatalf("entry %d is %d: %v", i, s, got)
		}
	}
}

// A flow's retransmissions are one attempt; after the window, a new one.
func TestDedup(t *testing.T) {
	d := newDedup(10*time.Second, 3)
	e := entry(0)
	if !d.first(e) {
		t.Fatal("the first packet is not first")
	}
	e.Time = e.Time.Add(3 * time.Second)
	if d.first(e) {
		t.Error("a retransmission 3 s later counts again")
	}
	e.Time = e.Time.Add(9 * time.Second)
	if d.first(e) {
		t.Error("a retransmission 9 s after the last counts again")
	}
	e.Time = e.Time.Add(11 * time.Second)
	if !d.first(e) {
		t.Error("the same flow 11 s after its last packet is not a new attempt")
	}
	o := entry(1)
	o.Time = e.Time
	if !d.first(o) {
		t.Error("another source port is not another attempt")
	}
	for i := range 10 {
		d.first(entry(100 + i))
	}
	if len(d.seen) > 3+1 {
		t.Errorf("remembers %d flows, more than its bound", len(d.seen))
	}
}
