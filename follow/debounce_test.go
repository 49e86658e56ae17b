package follow

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in a synctest bubble: time is virtual, so they are exact and
// take no real time.

const (
	testQuiet = 50 * time.Millisecond
	testMax   = 200 * time.Millisecond
)

func ev(i int) Event { return Event{Kind: KindLink, Detail: fmt.Sprint(i)} }

// recv returns the batch delivered now, or nil if none is.
func recv(t *testing.T, out <-chan []Event) []Event {
	t.Helper()
	synctest.Wait()
	select {
	case b, ok := <-out:
		if !ok {
			t.Fatal("channel closed")
		}
		return b
	default:
		return nil
	}
}

func TestDebounceQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := make(chan Event)
		out := Debounce(t.Context(), in, testQuiet, testMax)
		in <- ev(1)
		time.Sleep(testQuiet - time.Millisecond)
		in <- ev(2)
		time.Sleep(testQuiet - time.Millisecond)
		if b := recv(t, out); b != nil {
			t.Fatalf("delivered %v before a quiet period", b)
		}
		time.Sleep(time.Millisecond)
		if b := recv(t, out); !reflect.DeepEqual(b, []Event{ev(1), ev(2)}) {
			t.Fatalf("got %v, want events 1 and 2", b)
		}
		// A new event starts a new batch.
		in <- ev(3)
		time.Sleep(testQuiet)
		if b := recv(t, out); !reflect.DeepEqual(b, []Event{ev(3)}) {
			t.Fatalf("got %v, want event 3", b)
		}
		if b := recv(t, out); b != nil {
			t.Fatalf("extra batch %v", b)
		}
	})
}

func TestDebounceMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := make(chan Event)
		out := Debounce(t.Context(), in, testQuiet, testMax)
		start := time.Now()
		var want []Event
		for i := 0; time.Since(start) < testMax; i++ {
			if b := recv(t, out); b != nil {
				t.Fatalf("delivered %v after %v, before max", b, time.Since(start))
			}
			in <- ev(i)
			want = append(want, ev(i))
			time.Sleep(testQuiet / 2) // never quiet
		}
		if b := recv(t, out); !reflect.DeepEqual(b, want) {
			t.Fatalf("got %v, want %v", b, want)
		}
	})
}

// A batch waiting for its reader takes in later events; no second batch.
func TestDebounceSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := make(chan Event)
		out := Debounce(t.Context(), in, testQuiet, testMax)
		in <- ev(1)
		time.Sleep(testQuiet)
		in <- ev(2) // the batch is due but not read yet
		time.Sleep(time.Hour)
		if b := recv(t, out); !reflect.DeepEqual(b, []Event{ev(1), ev(2)}) {
			t.Fatalf("got %v, want events 1 and 2", b)
		}
		if b := recv(t, out); b != nil {
			t.Fatalf("extra batch %v", b)
		}
	})
}

func TestDebounceFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := make(chan Event)
		out := Debounce(t.Context(), in, testQuiet, testMax)
		for i := range 3 * maxBatch {
			in <- ev(i)
		}
		time.Sleep(testQuiet)
		b := recv(t, out)
		if len(b) != 1 || b[0].Kind != KindResync {
			t.Fatalf("got %d events, want a single resync", len(b))
		}
		in <- ev(1)
		time.Sleep(testQuiet)
		if b := recv(t, out); !reflect.DeepEqual(b, []Event{ev(1)}) {
			t.Fatalf("after a flood got %v, want event 1", b)
		}
	})
}

func TestDebounceInputClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := make(chan Event)
		out := Debounce(t.Context(), in, testQuiet, testMax)
		in <- ev(1)
		close(in)
		// Delivered at once, without waiting for the quiet period.
		if b := recv(t, out); !reflect.DeepEqual(b, []Event{ev(1)}) {
			t.Fatalf("got %v, want event 1", b)
		}
		synctest.Wait()
		if _, ok := <-out; ok {
			t.Fatal("channel still open after the input closed")
		}
	})
}

func TestDebounceCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		in := make(chan Event)
		out := Debounce(ctx, in, testQuiet, testMax)
		in <- ev(1)
		cancel()
		synctest.Wait()
		select {
		case b, ok := <-out:
			if ok {
				t.Fatalf("got %v after cancel, want the channel closed", b)
			}
		default:
			t.Fatal("channel still open after cancel")
		}
		// synctest.Test fails if the goroutine is still running.
	})
}
