package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/refusals"
	"github.com/nszone/nszone/zones"
)

// How often log -f looks for new entries, and for zones come up or gone
// and a watch started.
const (
	followPoll = 100 * time.Millisecond
	zonesPoll  = 2 * time.Second
)

func logCmd(o *options) *cobra.Command {
	var output string
	var follow bool
	c := &cobra.Command{
		Use:   "log [ZONE...] [-f] [-o table|json]",
		Short: "Show what the zones tried and were refused, newest last",
		Long: `log shows the connection attempts the zones' walls refused, one line each (a
retransmission is not another attempt): the time, the zone, the protocol, the
source and destination address and port, and the class that refused it: lan,
host, internet or zone:NAME, as explain names it. Without ZONE, every zone.

The kernel logs each zone's refusals in the zone's own namespace, at most 20 a
second per family after a burst of 50 (a flood costs little); nszone watch keeps
the recent ones in /run/nszone/log (1 MiB at most, rotated) and writes them to
the journal, 20 a minute per zone at most and a count of the rest. -f
follows them as they come; with no watch running, log -f collects them itself.
A zone with log: false in the zones file logs nothing (its attempts are still
refused). -o json prints a list of objects (time, zone, proto, src, sport, dst,
dport, class, uid); with -f, one object per line.`,
		Example: `  nszone log -f wan
  nszone log -o json lan`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			for _, z := range args {
				if err := netns.CheckName(z); err != nil {
					return usagef("zone %q: %v", z, err)
				}
			}
			if err := needRoot(cmd); err != nil {
				return err
			}
			m, err := manager(o)
			if err != nil {
				return err
			}
			ring := &refusals.Ring{Dir: m.LogDir(), Max: refusals.DefaultMax}
			want := func(e refusals.Entry) bool { return len(args) == 0 || slices.Contains(args, e.Zone) }
			if follow {
				return followLog(cmd, o, m, ring, want, output)
			}
			es, err := ring.Read()
			if err != nil {
				return err
			}
			es = slices.DeleteFunc(es, func(e refusals.Entry) bool { return !want(e) })
			if len(es) == 0 && !m.Watching() {
				fmt.Fprintln(cmd.ErrOrStderr(), "nszone: no nszone watch runs to keep refused attempts; start it (systemctl start nszone) or follow them with nszone log -f")
			}
			if output == "json" {
				if es == nil {
					es = []refusals.Entry{}
				}
				return writeJSON(cmd, es)
			}
			out := cmd.OutOrStdout()
			printLogRow(out, refusals.Columns)
			for _, e := range es {
				printLogRow(out, e.Row())
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "print new attempts as they come, until interrupted")
	return c
}

// printLogRow writes one row in columns wide enough for most addresses: a
// followed log cannot align on rows yet to come.
func printLogRow(w io.Writer, cols []string) {
	fmt.Fprintf(w, "%-23s  %-10s  %-9s  %-27s  %-27s  %s\n", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])
}

// followLog prints the ring's entries and then each new one, collecting
// them from the zones itself while no watch does.
func followLog(cmd *cobra.Command, o *options, m *zones.Manager, ring *refusals.Ring, want func(refusals.Entry) bool, output string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go collectWhileUnwatched(ctx, o, m, ring)
	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	if output == "table" {
		printLogRow(out, refusals.Columns)
	}
	return ring.Follow(ctx, followPoll, func(e refusals.Entry) {
		switch {
		case !want(e):
		case output == "json":
			_ = enc.Encode(e)
		default:
			printLogRow(out, e.Row())
		}
	})
}

// collectWhileUnwatched reads the zones' logs into the ring while no nszone
// watch runs, following zones as they come up, and hands them to a watch
// that starts.
func collectWhileUnwatched(ctx context.Context, o *options, m *zones.Manager, ring *refusals.Ring) {
	c := &refusals.Collector{Ring: ring, Classifier: m.Classifier, Log: o.log}
	for {
		var names []string
		if !m.Watching() {
			names, _ = m.UpZones()
		}
		c.Zones(ctx, names)
		select {
		case <-ctx.Done():
			return
		case <-time.After(zonesPoll):
		}
	}
}
