package e2e

import (
	"net/netip"
	"testing"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
	"github.com/nszone/nszone/e2e/internal/tap"
	"github.com/nszone/nszone/lab"
)

// TestLeakBroadcastMulticast: broadcasts and multicasts from a zone without
// lan (mDNS, SSDP, LLMNR, NetBIOS, plain broadcast, both families) never
// reach the LAN, with the host wall or without; the same sent from the host
// do (positive control).
func TestLeakBroadcastMulticast(t *testing.T) {
	guardHost(t)
	mustRun(t, "up", "-c", writeZones(t, defaultZones))
	groups := []netip.Addr{
		netip.MustParseAddr("224.0.0.251"), netip.MustParseAddr("239.255.255.250"),
		netip.MustParseAddr("ff02::1:3"), netip.MustParseAddr("ff02::fb"), netip.MustParseAddr("ff02::c"),
	}
	lanSink := sink.Listen(t, lab.LANNS, sink.Options{UDP: []int{9137, 137, 5353, 1900, 5355}, Groups: groups})
	lanTap := tap.Start(t, lab.LANNS, "eth0")
	targets := []string{
		"udp:255.255.255.255:9137",
		"udp:255.255.255.255:137", // NetBIOS name service
		"udp:192.168.50.255:137",  // the LAN's own broadcast address
		"udp:224.0.0.251:5353",    // mDNS
		"udp:239.255.255.250:1900",
		"udp:[ff02::1:3%eth0]:5355", // LLMNR
		"udp:[ff02::fb%eth0]:5353",
		"udp:[ff02::c%eth0]:1900",
		"udp:[ff02::1%eth0]:9137", // all nodes
	}
	for _, flush := range []bool{false, true} {
		phase, via := "with the host wall", ""
		if flush {
			flushHost(t)
			phase, via = "after a flush of the host's rules", "netns:"
		}
		mark := lanTap.Mark()
		for _, z := range []string{"wan", "offline"} {
			tok := sender.Token("bcast-" + z)
			send(t, via+z, tok, 3, targets...)
			waitInFlight()
			if n := lanSink.Count(tok); n > 0 {
				t.Errorf("%s: %d broadcasts or multicasts from %s arrived in the LAN:\n%s", phase, n, z, lanSink.Describe(tok))
			}
			if n := lanTap.Count(mark, tap.WithToken(tok)); n > 0 {
				t.Errorf("%s: %d frames from %s reached the LAN:\n%s", phase, n, z, lanTap.Describe(mark, tap.WithToken(tok)))
			}
		}
		tok := sender.Token("bcast-host")
		send(t, atHost, tok, 3, targets...)
		waitInFlight()
		for _, tg := range targets {
			if lanSink.Count(tok, tg+" ") == 0 {
				t.Errorf("%s (positive control): the host's %s did not arrive in the LAN", phase, tg)
			}
		}
	}
}
