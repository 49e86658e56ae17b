package e2e

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
)

const zoneToZoneZones = `version: 1
zones:
  a:
    allow: ["zone:b"]
  b:
    allow: []
  c:
    allow: []
`

// TestLeakZoneToZone: a [zone:b] reaches b (TCP, and UDP with its reply);
// b does not reach a; c reaches neither; a does not reach c. With the host
// wall and after a flush.
func TestLeakZoneToZone(t *testing.T) {
	guardHost(t)
	mustRun(t, "up", "-c", writeZones(t, zoneToZoneZones))
	sinks := map[string]*sink.Sink{}
	addrs := map[string][]netip.Addr{}
	for _, z := range []string{"a", "b", "c"} {
		sinks[z] = sink.Listen(t, z, sink.Options{UDP: []int{portZone}, TCP: []int{portZone}, Echo: true})
		addrs[z], _ = zoneAddrs(t, z)
	}
	to := func(z string, kinds ...string) []string {
		var out []string
		for _, a := range addrs[z] {
			for _, k := range kinds {
				out = append(out, k+":"+netip.AddrPortFrom(a, portZone).String())
			}
		}
		return out
	}
	for _, flush := range []bool{false, true} {
		phase, via := "with the host wall", ""
		if flush {
			flushHost(t)
			phase, via = "after a flush of the host's rules", "netns:"
		}
		// Positive control: a reaches b, and b's replies come back.
		res := send(t, via+"a", sender.Token("z-a"), 2, to("b", "tcp", "udprr")...)
		for tg, st := range res {
			if st.OK == 0 {
				t.Errorf("%s (positive control): a [zone:b] cannot reach b at %s: %s", phase, tg, st.LastErr)
			}
		}
		forbidden := []struct{ from, to string }{{"b", "a"}, {"c", "a"}, {"c", "b"}, {"a", "c"}}
		before := map[string]int{}
		for z, s := range sinks {
			before[z] = s.Conns()
		}
		for _, f := range forbidden {
			tok := sender.Token("z-" + f.from + f.to)
			res := send(t, via+f.from, tok, 3, to(f.to, "tcp", "udp", "udprr")...)
			waitInFlight()
			for tg, st := range res {
				if !strings.HasPrefix(tg, "udp:") && st.OK > 0 {
					t.Errorf("%s: %s reached %s at %s", phase, f.from, f.to, tg)
				}
			}
			if n := sinks[f.to].Count(tok); n > 0 {
				t.Errorf("%s: %d datagrams from %s arrived in %s:\n%s", phase, n, f.from, f.to, sinks[f.to].Describe(tok))
			}
		}
		for _, z := range []string{"a", "c"} {
			if n := sinks[z].Conns() - before[z]; n > 0 {
				t.Errorf("%s: %d connections arrived in zone %s, which no zone may reach", phase, n, z)
			}
		}
	}
}
