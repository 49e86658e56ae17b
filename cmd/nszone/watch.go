package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/follow"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/refusals"
	"github.com/nszone/nszone/sdnotify"
	"github.com/nszone/nszone/zones"
)

// How watch paces itself. A burst of events (an interface coming up brings
// a link, its addresses and routes, Docker's restart dozens of rule
// changes) is gathered until quiet for debounceQuiet, never longer than
// debounceMax, then converged once; the kernel reports one change (an
// address, the routes it adds for it) within a millisecond or two, and a
// convergence that repairs nothing is cheap. A failed convergence (the host's
// xtables lock held, an interface half made) is tried again after
// retryAfter. Where the host's iptables is legacy, whose rules change
// without any event, a no-change check runs every legacyPoll.
const (
	debounceQuiet = 10 * time.Millisecond
	debounceMax   = 100 * time.Millisecond
	retryAfter    = 500 * time.Millisecond
	legacyPoll    = time.Second
	watchGOGC     = 400
)

func watchCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "watch [-c FILE]",
		Short: "Stay running: follow the host's changes and keep every zone converged",
		Long: `watch brings the zones up as up does, then follows the kernel's change events
(links, addresses and routes of both families, and the nftables ruleset, which
iptables-nft writes too) and converges what changed within a fraction of a
second: the host walls placed first again after Docker or a firewall reload, the
inner walls taught the host's new addresses, NAT following a new uplink, zones
closed when the uplink goes. It takes nszone's lock only while it writes, and
logs one line per repair. SIGHUP reads the zones file again (systemctl reload).
Killing it changes nothing: every zone stays as closed as its walls make it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(cmd); err != nil {
				return err
			}
			f, err := loadConfig(o)
			if err != nil {
				return err
			}
			m, err := manager(o)
			if err != nil {
				return err
			}
			return watch(cmd, o, m, f)
		},
	}
	addConfigFlag(c, o)
	return c
}

func watch(cmd *cobra.Command, o *options, m *zones.Manager, f *config.File) error {
	// A convergence allocates much and keeps little (what it read of every
	// zone): with Go's default heap goal, the collector took a sixth of
	// watch's time repairing 50 zones. GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(watchGOGC)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	unmark, err := m.MarkWatching()
	if err != nil {
		return err
	}
	defer unmark()
	// Subscribed before the first convergence: nothing that happens while
	// it runs is missed.
	host, err := follow.Subscribe(ctx, o.log)
	if err != nil {
		return fmt.Errorf("following the kernel's changes: %w", err)
	}
	// The host's events, and each zone's nftables ruleset (its inner
	// wall), into one stream.
	events := make(chan follow.Event, 256)
	forward := func(in <-chan follow.Event) {
		for e := range in {
			select {
			case events <- e:
			case <-ctx.Done():
				return
			}
		}
	}
	go forward(host)
	out := cmd.OutOrStdout()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	// Each zone's refused attempts, into the ring and the journal.
	refused := &refusals.Collector{Ring: &refusals.Ring{Dir: m.LogDir(), Max: refusals.DefaultMax},
		Classifier: m.Classifier, Log: o.log, Say: func(line string) { say("%s", line) }}
	inner := map[string]context.CancelFunc{}
	followZones := func() {
		names, err := m.UpZones()
		if err != nil {
			return
		}
		refused.Zones(ctx, names)
		up := map[string]bool{}
		for _, name := range names {
			up[name] = true
			if inner[name] != nil {
				continue
			}
			zctx, cancel := context.WithCancel(ctx)
			ns, err := netns.OpenNamed(name)
			var ch <-chan follow.Event
			if err == nil {
				ch, err = follow.Ruleset(zctx, name, ns, o.log)
				ns.Close() // the subscription's socket holds the namespace
			}
			if err != nil {
				cancel()
				continue // not there (yet): the next convergence tries again
			}
			inner[name] = cancel
			go forward(ch)
		}
		for name, cancel := range inner {
			if !up[name] {
				cancel() // its socket would keep a removed zone's namespace alive
				delete(inner, name)
			}
		}
	}
	batches := follow.Debounce(ctx, events, debounceQuiet, debounceMax)

	converge := func(why string) bool {
		l, err := m.Lock(true)
		if err != nil {
			say("watch: %v", err)
			return false
		}
		start := time.Now()
		rep, err := m.Up(f, nil)
		l.Unlock()
		if rep != nil && rep.Changed {
			for _, line := range rep.Lines {
				say("repaired (%s, %s): %s", why, time.Since(start).Round(time.Millisecond), line)
			}
		}
		followZones()
		if err != nil {
			say("watch: converging (%s): %v; trying again in %s", why, err, retryAfter)
			return false
		}
		return true
	}

	var retry <-chan time.Time
	if converge("start") {
		say("watch: %d zone(s) of %s converged; following the host's changes", len(f.Zones), zones.FileName(f.Path))
	} else {
		retry = time.After(retryAfter)
		say("watch: following the host's changes; converging again in %s", retryAfter)
	}
	if _, err := sdnotify.Notify(sdnotify.Ready + "\nSTATUS=following the host's changes"); err != nil {
		say("watch: telling systemd it is ready: %v", err)
	}
	// Later notifications are best effort: this one said whether systemd listens.
	notify := func(state string) { _, _ = sdnotify.Notify(state) }
	var poll <-chan time.Time
	if m.FirewallMode() == "legacy" {
		// iptables-legacy changes no nftables ruleset: no event tells of a
		// flushed wall, so a check that writes nothing unless needed runs
		// every legacyPoll (the nftables walls hold meanwhile).
		t := time.NewTicker(legacyPoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		var why string
		select {
		case <-ctx.Done():
			notify(sdnotify.Stopping)
			say("watch: stopping; the zones stay as they are")
			return nil
		case batch, ok := <-batches:
			if !ok {
				return fmt.Errorf("following the kernel's changes: the event stream ended")
			}
			why = describeBatch(batch)
		case <-hup:
			notify(sdnotify.Reloading)
			nf, err := loadConfig(o)
			if err != nil {
				say("watch: reloading: %v; keeping the file as it was", err)
				notify(sdnotify.Ready)
				continue
			}
			f, why = nf, "reload"
		case <-retry:
			why = "retry"
		case <-poll:
			why = "legacy iptables check"
		}
		retry = nil
		if !converge(why) {
			retry = time.After(retryAfter)
		}
		if why == "reload" {
			notify(sdnotify.Ready)
		}
	}
}

// describeBatch says in a few words what a batch of events was, naming the
// change that most likely caused the rest (an address before the routes the
// kernel adds for it).
func describeBatch(batch []follow.Event) string {
	if len(batch) == 0 {
		return "no events"
	}
	rank := map[string]int{follow.KindResync: 0, follow.KindAddr: 1, follow.KindLink: 2, follow.KindRuleset: 3, follow.KindRoute: 4}
	best := batch[0]
	for _, e := range batch[1:] {
		if rank[e.Kind] < rank[best.Kind] {
			best = e
		}
	}
	if len(batch) == 1 {
		return best.String()
	}
	return fmt.Sprintf("%s and %d more", best, len(batch)-1)
}
