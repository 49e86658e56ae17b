package follow

import (
	"context"
	"fmt"
	"time"
)

// Kinds of Event.
const (
	KindLink    = "link"
	KindAddr    = "addr"
	KindRoute   = "route"
	KindRuleset = "ruleset"
	// KindResync means changes may have been missed: converge everything.
	KindResync = "resync"
)

// Event is one change the kernel reported.
type Event struct {
	Kind   string // one of the Kind constants
	Detail string // short human text, e.g. "addr add 192.0.2.5/24 on eth0"
}

func (e Event) String() string { return e.Kind + ": " + e.Detail }

// maxBatch bounds the memory of a batch: past it, a resync stands for the
// whole batch, since nobody reads a thousand details anyway.
const maxBatch = 1000

// Debounce gathers events until quiet passes without a new one, or max after
// the first, then delivers them as one batch. Events that arrive while a batch
// waits for its reader join that batch, so a slow reader gets fewer, larger
// batches rather than a backlog. When in closes, the last batch is delivered
// and the channel closed; when ctx is done, it is closed at once.
func Debounce(ctx context.Context, in <-chan Event, quiet, max time.Duration) <-chan []Event {
	out := make(chan []Event)
	go func() {
		defer close(out)
		var (
			batch        []Event
			flooded      bool // batch is a single resync standing for more than maxBatch
			ready        bool // batch is due: deliver it as soon as possible
			quietT, maxT *time.Timer
		)
		stopTimers := func() {
			if quietT != nil {
				quietT.Stop()
				maxT.Stop()
				quietT, maxT = nil, nil
			}
		}
		defer stopTimers()
		for {
			var send chan<- []Event
			var quietC, maxC <-chan time.Time
			if ready {
				send = out
			}
			if quietT != nil {
				quietC, maxC = quietT.C, maxT.C
			}
			select {
			case <-ctx.Done():
				return
			case e, ok := <-in:
				if !ok {
					if len(batch) == 0 {
						return
					}
					in, ready = nil, true
					stopTimers()
					continue
				}
				switch {
				case flooded:
				case len(batch) == maxBatch:
					batch = []Event{{Kind: KindResync, Detail: fmt.Sprintf("more than %d changes at once", maxBatch)}}
					flooded = true
				default:
					batch = append(batch, e)
				}
				switch {
				case ready: // rides along with the batch already due
				case quietT == nil:
					quietT, maxT = time.NewTimer(quiet), time.NewTimer(max)
				default:
					quietT.Reset(quiet)
				}
			case <-quietC:
				ready = true
				stopTimers()
			case <-maxC:
				ready = true
				stopTimers()
			case send <- batch:
				if in == nil {
					return
				}
				batch, flooded, ready = nil, false, false
			}
		}
	}()
	return out
}
