package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sender"
)

// TestLeakRefusedAtOnce: a forbidden connection fails at once (a TCP
// reset or an ICMP error the kernel acts on), for both families, so that
// programs in a zone do not hang (README: "programs fail at once instead of
// hanging"). Positive control: the allowed ones connect.
func TestLeakRefusedAtOnce(t *testing.T) {
	guardHost(t)
	l := theLab
	mustRun(t, "up", "-c", writeZones(t, defaultZones))
	_, wanGW := zoneAddrs(t, "wan")
	lanZone, _ := zoneAddrs(t, "lan")
	var targets []string
	for _, a := range append(append([]netip.Addr{l.LANServer4, l.LANServer6, l.HostAddr4.Addr(), l.HostAddr6.Addr()}, wanGW...), lanZone...) {
		targets = append(targets, "tcp:"+netip.AddrPortFrom(a, 80).String())
	}
	allowed := []string{"tcp:" + netip.AddrPortFrom(l.InetServer4, 80).String(), "tcp:" + netip.AddrPortFrom(l.InetServer6, 80).String()}
	// A one-second connect timeout: the kernel retries a SYN after one second.
	args := append([]string{senderPath(t), "send", "-n", "1", "-tcpn", "1", "-token", sender.Token("fast"), "-timeout", "900ms"}, append(targets, allowed...)...)
	r := runAt(t, "wan", 30*time.Second, []string{sender.Env + "=1"}, args...)
	res := sender.Results(r.out)
	if len(res) != len(targets)+len(allowed) {
		t.Fatalf("sender: exit %d %s%s", r.code, r.out, r.err)
	}
	for _, tg := range targets {
		switch st := res[tg]; {
		case st.OK > 0:
			t.Errorf("wan connected to %s", tg)
		case strings.Contains(st.LastErr, "timeout"):
			t.Errorf("wan's connection to %s was not refused at once: %s", tg, st.LastErr)
		}
	}
	for _, tg := range allowed {
		if res[tg].OK == 0 {
			t.Errorf("positive control: wan cannot connect to %s: %s", tg, res[tg].LastErr)
		}
	}
}
