package refusals

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/nflog"
)

// Collector reads the kernel's log of refused attempts in zones'
// namespaces and keeps one entry per attempt in Ring.
type Collector struct {
	Ring *Ring
	// Classifier gives what names a destination's class to a zone (lan,
	// host, internet, zone:NAME) as explain does, as of the moment: the
	// zones up and the host's addresses change. It is asked again after
	// ClassifierAge.
	Classifier func() (func(zone string, d firewall.Dest) string, error)
	// Emit, when set, gets each entry as it is kept (watch: the journal).
	Emit func(Entry)
	Log  *slog.Logger

	mu       sync.Mutex
	dedup    *dedup
	classify func(zone string, d firewall.Dest) string
	asked    time.Time
}

// How the collector paces itself: a retransmission within dedupWindow of
// its flow's last packet is the same attempt; a group another program
// reads is asked for again every retryBind.
const (
	dedupWindow   = 10 * time.Second
	dedupMax      = 4096
	ClassifierAge = 2 * time.Second
	retryBind     = 2 * time.Second
)

// Follow reads zone's log group until ctx ends. While another program reads
// it (one reader per group and namespace), it tries again every retryBind:
// that program keeps the ring meanwhile.
func (c *Collector) Follow(ctx context.Context, zone string) {
	for {
		err := c.follow(ctx, zone)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, nflog.ErrBusy) {
			c.Log.Debug("reading the zone's log of refused attempts", "zone", zone, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryBind):
		}
	}
}

func (c *Collector) follow(ctx context.Context, zone string) error {
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		return err
	}
	l, err := nflog.Listen(ns.Fd(), firewall.LogGroup)
	ns.Close() // the socket holds the namespace
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer func() {
		if stop() {
			l.Close()
		}
	}()
	for {
		ps, err := l.Receive()
		if err != nil {
			return err
		}
		c.keep(zone, ps)
	}
}

// keep turns logged packets into entries and keeps each attempt's first.
func (c *Collector) keep(zone string, ps []nflog.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dedup == nil {
		c.dedup = newDedup(dedupWindow, dedupMax)
	}
	if c.Classifier != nil && time.Since(c.asked) > ClassifierAge {
		c.asked = time.Now()
		if cl, err := c.Classifier(); err == nil {
			c.classify = cl
		} else {
			c.Log.Debug("classifying refused attempts", "err", err)
		}
	}
	var es []Entry
	for _, p := range ps {
		f, err := nflog.ParseFlow(p.Payload)
		if err != nil || p.UID < 0 {
			// No socket sent it: the kernel's own packets (IPv6's
			// multicast listener reports when the link comes up) are
			// no program's attempt.
			continue
		}
		uid := p.UID
		e := Entry{Time: p.Time, Zone: zone, Proto: f.Proto, Src: f.Src, Sport: f.Sport, Dst: f.Dst, Dport: f.Dport, UID: &uid}
		if !c.dedup.first(e) {
			continue
		}
		if c.classify != nil {
			d := firewall.Dest{Addr: e.Dst, Proto: e.Proto, Port: e.Dport}
			if d.Proto != "tcp" && d.Proto != "udp" {
				d.Proto, d.Port = "", 0
			}
			e.Class = c.classify(zone, d)
		}
		es = append(es, e)
	}
	if len(es) == 0 {
		return
	}
	if err := c.Ring.Append(es); err != nil {
		c.Log.Warn("keeping refused attempts", "err", err)
	}
	if c.Emit != nil {
		for _, e := range es {
			c.Emit(e)
		}
	}
}
