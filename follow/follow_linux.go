package follow

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// rcvBuf is the receive buffer asked for every socket, so that bursts fit
// while a reader that stalls still ends in an overflow, reported as a resync.
// The kernel caps it at net.core.rmem_max. A variable: tests shrink it.
var rcvBuf = 1 << 20

// Backoff between attempts to renew a subscription that keeps failing.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Subscribe follows the links, the IPv4 and IPv6 addresses and routes, and
// the nftables ruleset (which iptables-nft writes too) of the current network
// namespace, until ctx is done; then it closes every socket and the channel.
// A lost event (an overflow) yields a resync Event at once; a subscription
// that broke yields one more once its renewal is in place, so no change
// between the two goes unreported.
//
// No goroutine here switches namespaces: every socket is opened in the
// namespace of the calling thread, which must be the process's.
func Subscribe(ctx context.Context, log *slog.Logger) (<-chan Event, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &follower{ctx: ctx, log: log, out: make(chan Event, 256), names: map[int]string{}}

	// Open everything first, so that a failure returns an error instead of
	// a channel that silently misses a kind of change.
	starts := []func() (func(), error){
		rtnl[netlink.LinkUpdate]{"link", subscribeLinks, f.describeLink}.start(f),
		rtnl[netlink.AddrUpdate]{"addr", subscribeAddrs, f.describeAddr}.start(f),
		rtnl[netlink.RouteUpdate]{"route", subscribeRoutes, f.describeRoute}.start(f),
		f.startNft,
	}
	var runs []func()
	for _, start := range starts {
		run, err := start()
		if err != nil {
			cancel()
			for _, r := range runs {
				f.wg.Go(r) // with ctx done, each only drains its closing subscription
			}
			f.wg.Wait()
			return nil, err
		}
		runs = append(runs, run)
	}
	for _, r := range runs {
		f.wg.Go(r)
	}
	go func() {
		f.wg.Wait()
		cancel()
		close(f.out)
	}()
	return f.out, nil
}

// follower is the state shared by one Subscribe's goroutines.
type follower struct {
	ctx context.Context
	log *slog.Logger
	out chan Event
	wg  sync.WaitGroup

	mu    sync.Mutex
	names map[int]string // link names by index, for the details
}

// emit sends e, or drops it once ctx is done.
func (f *follower) emit(e Event) {
	select {
	case f.out <- e:
	case <-f.ctx.Done():
	}
}

// lost reports that changes from source may have been missed.
func (f *follower) lost(source string, err error) {
	if f.ctx.Err() != nil {
		return // the sockets closing on purpose
	}
	f.log.Warn("network change events lost, resyncing", "source", source, "err", err)
	f.emit(Event{Kind: KindResync, Detail: fmt.Sprintf("%s events lost: %v", source, err)})
}

// renewed reports that the subscription to source broke and was renewed.
func (f *follower) renewed(source string) {
	f.log.Info("network change subscription renewed, resyncing", "source", source)
	f.emit(Event{Kind: KindResync, Detail: source + " subscription renewed"})
}

// sleep waits d or until ctx is done, and reports whether ctx is still live.
func (f *follower) sleep(d time.Duration) bool {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-f.ctx.Done():
		}
	}
	return f.ctx.Err() == nil
}

// nextBackoff waits nothing after a subscription that lasted, and longer and
// longer after one that broke at once.
func nextBackoff(prev time.Duration, lasted time.Duration) time.Duration {
	if lasted > 10*maxBackoff {
		return 0
	}
	return min(max(2*prev, minBackoff), maxBackoff)
}

// rtnl is one rtnetlink subscription of vishvananda/netlink.
type rtnl[U any] struct {
	name      string
	subscribe func(ch chan<- U, done <-chan struct{}, onErr func(error)) error
	describe  func(U) Event
}

func subscribeLinks(ch chan<- netlink.LinkUpdate, done <-chan struct{}, onErr func(error)) error {
	return netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: rcvBuf})
}

func subscribeAddrs(ch chan<- netlink.AddrUpdate, done <-chan struct{}, onErr func(error)) error {
	return netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: rcvBuf})
}

func subscribeRoutes(ch chan<- netlink.RouteUpdate, done <-chan struct{}, onErr func(error)) error {
	return netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: rcvBuf})
}

// open subscribes once. The channel closes when the subscription ends, on a
// receive error or once stop (or the end of ctx) closed its socket.
func (r rtnl[U]) open(f *follower) (ch <-chan U, stop func(), err error) {
	c := make(chan U, 64)
	done := make(chan struct{})
	var once sync.Once
	closeDone := func() { once.Do(func() { close(done) }) }
	unhook := context.AfterFunc(f.ctx, closeDone)
	stop = func() { unhook(); closeDone() }
	// The library calls onErr from its reader, before it closes c.
	onErr := func(err error) { f.lost(r.name, err) }
	if err := r.subscribe(c, done, onErr); err != nil {
		stop()
		return nil, nil, fmt.Errorf("subscribing to %s changes: %w", r.name, err)
	}
	return c, stop, nil
}

// start subscribes and returns the loop that follows the subscription, and
// renews it whenever it ends before ctx does.
func (r rtnl[U]) start(f *follower) func() (func(), error) {
	return func() (func(), error) {
		ch, stop, err := r.open(f)
		if err != nil {
			return nil, err
		}
		return func() {
			var backoff time.Duration
			for {
				opened := time.Now()
				for u := range ch { // drained to the end: the library's reader blocks on it
					f.emit(r.describe(u))
				}
				stop() // after a receive error the library leaves the socket open
				for {
					backoff = nextBackoff(backoff, time.Since(opened))
					if !f.sleep(backoff) {
						return
					}
					if ch, stop, err = r.open(f); err == nil {
						break
					}
					f.log.Warn("renewing a network change subscription", "source", r.name, "err", err)
				}
				f.renewed(r.name)
			}
		}, nil
	}
}
