package refusals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	// classifierAge.
	Classifier func() (func(zone string, d firewall.Dest) string, error)
	// Say, when set, gets a line for each entry as it is kept (watch's
	// output: the journal), at most sayMax per zone every sayPer; then one
	// line of how many more there were.
	Say func(line string)
	Log *slog.Logger

	mu        sync.Mutex
	dedup     *dedup
	classify  func(zone string, d firewall.Dest) string
	asked     time.Time
	following map[string]context.CancelFunc // the zones read, each until its cancel
	said      map[string]*sayWindow
}

// How the collector paces itself: a retransmission within dedupWindow of
// its flow's last packet is the same attempt; a group another program
// reads is asked for again every retryBind. The journal gets at most
// sayMax lines a zone every sayPer: a program in a zone can keep the
// kernel's log busy forever, and would push the host's other logs out.
const (
	dedupWindow   = 10 * time.Second
	dedupMax      = 4096
	classifierAge = 2 * time.Second
	retryBind     = 2 * time.Second
	sayMax        = 20
	sayPer        = time.Minute
)

// sayWindow counts one zone's lines to the journal in the current sayPer.
type sayWindow struct {
	start      time.Time
	said, more int
}

// Zones makes the collector read the log of exactly the named zones: it
// starts on those it does not read yet and stops on the others. Zones(nil)
// stops them all.
func (c *Collector) Zones(ctx context.Context, names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.following == nil {
		c.following = map[string]context.CancelFunc{}
	}
	for _, name := range names {
		if c.following[name] == nil {
			zctx, cancel := context.WithCancel(ctx)
			c.following[name] = cancel
			go c.follow(zctx, name)
		}
	}
	for name, cancel := range c.following {
		if !slices.Contains(names, name) {
			cancel() // its socket would keep a removed zone's namespace alive
			delete(c.following, name)
		}
	}
}

// follow reads zone's log group until ctx ends. While another program
// reads it (one reader per group and namespace), it tries again every
// retryBind: that program keeps the ring meanwhile.
func (c *Collector) follow(ctx context.Context, zone string) {
	busy := false
	for {
		err := c.read(ctx, zone)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, nflog.ErrBusy) && !busy:
			c.Log.Info("another program reads the zone's log of refused attempts; trying again every "+retryBind.String(), "zone", zone)
			busy = true
		case !errors.Is(err, nflog.ErrBusy):
			c.Log.Debug("reading the zone's log of refused attempts", "zone", zone, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryBind):
		}
	}
}

// read reads zone's log group until ctx ends or the socket fails.
func (c *Collector) read(ctx context.Context, zone string) error {
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		return fmt.Errorf("zone %s: %w", zone, err)
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
	if c.Classifier != nil && time.Since(c.asked) > classifierAge {
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
		if err != nil || p.UID < 0 || p.Prefix != firewall.LogPrefix(zone) {
			// No socket sent it: the kernel's own packets (IPv6's
			// multicast listener reports when the link comes up) are
			// no program's attempt. Another prefix: not nszone's rule.
			continue
		}
		uid := p.UID
		e := Entry{Time: p.Time, Zone: zone, Proto: f.Proto, Src: f.Src, Sport: f.Sport, Dst: f.Dst, Dport: f.Dport, UID: &uid}
		if !c.dedup.first(e) {
			continue
		}
		e.Class = ClassUnknown
		if c.classify != nil {
			d := firewall.Dest{Addr: e.Dst, Proto: e.Proto, Port: e.Dport}
			if d.Proto != "tcp" && d.Proto != "udp" {
				d.Proto, d.Port = "", 0
			}
			if class := c.classify(zone, d); class != "" {
				e.Class = class
			}
		}
		es = append(es, e)
	}
	if len(es) == 0 {
		return
	}
	if err := c.Ring.Append(es); err != nil {
		c.Log.Warn("keeping refused attempts", "err", err)
	}
	if c.Say != nil {
		c.say(zone, es)
	}
}

// say writes es to the journal, within the zone's share. Called with mu held.
func (c *Collector) say(zone string, es []Entry) {
	if c.said == nil {
		c.said = map[string]*sayWindow{}
	}
	w := c.said[zone]
	now := time.Now()
	if w == nil || now.Sub(w.start) >= sayPer {
		if w != nil && w.more > 0 {
			c.Say(fmt.Sprintf("blocked connections: zone %s: %d more in the last %s (nszone log %s lists them)", zone, w.more, sayPer, zone))
		}
		w = &sayWindow{start: now}
		c.said[zone] = w
	}
	for _, e := range es {
		if w.said < sayMax {
			c.Say(e.String())
			w.said++
		} else {
			w.more++
		}
	}
}
