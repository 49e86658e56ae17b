package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/firewall"
)

// explainJSON is `explain -o json` (contract: verdict, class, term, reason).
type explainJSON struct {
	Verdict string `json:"verdict"`
	Class   string `json:"class"`
	Term    string `json:"term,omitempty"`
	Reason  string `json:"reason"`
}

func explainCmd(o *options) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "explain [-c FILE] ZONE DEST[:PORT][/PROTO] [-o table|json]",
		Short: "Say which term lets a zone's connection through, or that none does, and why",
		Long: `explain says whether zone ZONE may open a connection to DEST (an address,
with a port and tcp or udp: 192.168.50.10:80/tcp, [2001:db8::1]:443/tcp,
203.0.113.10/udp), which allow term decides (none when it is blocked), and which
class the address falls in and why: in lan by 192.168.0.0/16, a host address,
zone lan's link, a DNS opening. It answers from the zones file and the host as
they are, with the same matching that builds the rules; no zone needs to be up.
It exits 0 either way, and 2 for a zone or destination it cannot read.`,
		Example: `  nszone explain wan 192.168.50.10:80/tcp
  nszone explain -o json lan 203.0.113.10:443`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(2)(cmd, args); err != nil {
				return usageError{err} // exit 2, as the contract says
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usagef("-o %q: want table or json", output)
			}
			d, err := parseDest(args[1])
			if err != nil {
				return usagef("%v", err)
			}
			f, err := loadConfig(o)
			if err != nil {
				return err
			}
			m, err := manager(o)
			if err != nil {
				return err
			}
			v, err := m.Explain(f, args[0], d)
			if err != nil {
				return err
			}
			j := explainJSON{Verdict: "block", Class: v.Class, Term: v.Term, Reason: v.Reason}
			if v.Allow {
				j.Verdict = "allow"
			}
			if output == "json" {
				return writeJSON(cmd, j)
			}
			term := j.Term
			if term == "" {
				term = "none allows it"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: zone %s to %s\nclass: %s (%s)\nterm:  %s\n",
				j.Verdict, args[0], args[1], j.Class, j.Reason, term)
			return err
		},
	}
	addConfigFlag(c, o)
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return c
}

// parseDest reads ADDR[:PORT][/PROTO], an IPv6 address with a port in
// brackets; a port without a protocol is tcp.
func parseDest(s string) (firewall.Dest, error) {
	var d firewall.Dest
	rest, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" {
		return d, fmt.Errorf("destination %q: protocol %q (want tcp or udp)", s, proto)
	}
	d.Proto = proto
	if ap, err := netip.ParseAddrPort(rest); err == nil {
		d.Addr, d.Port = ap.Addr(), ap.Port()
		if d.Port == 0 {
			return d, fmt.Errorf("destination %q: port 0", s)
		}
		if d.Proto == "" {
			d.Proto = "tcp"
		}
		return d, nil
	}
	a, err := netip.ParseAddr(strings.Trim(rest, "[]"))
	if err != nil || a.Zone() != "" {
		return d, fmt.Errorf("destination %q: want ADDR[:PORT][/PROTO] (192.168.50.10:80/tcp, [2001:db8::1]:443)", s)
	}
	d.Addr = a
	return d, nil
}
