package e2e

// The leak suite (issue 3): what a zone must never reach, tried with real
// traffic and counted where it would arrive (a listener or a packet tap in
// the destination's namespace), never where it is sent. Every negative check
// has a positive control beside it, so that no test passes because nothing
// works at all. One file per topic (leak_TOPIC_test.go); the sender, the
// listeners and the packet taps are packages of e2e/internal.

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Ports of the suite's own listeners (the lab's servers use 53 and 80).
const (
	portUDP  = 9999 // one-way datagrams to a lab server
	portTCP  = 9998 // connection attempts to a lab server
	portHost = 9997 // services on the simulated host
	portZone = 9996 // services inside zones
)

func pageURL(a netip.Addr, port int) string {
	return "http://" + netip.AddrPortFrom(a, uint16(port)).String() + "/"
}

// expectUnreached checks that curl at where fails for every URL.
func expectUnreached(t testing.TB, phase, where string, urls ...string) {
	t.Helper()
	for _, u := range urls {
		r := runAt(t, where, 20*time.Second, nil, "curl", "-g", "-sS", "--max-time", "3", "-o", "/dev/null", u)
		if r.code == 0 {
			t.Errorf("%s: %s reached %s (it must not)", phase, where, u)
		}
	}
}

// expectReached checks that curl at where gets the page at every URL.
func expectReached(t testing.TB, phase, where string, urls ...string) {
	t.Helper()
	for _, u := range urls {
		r := runAt(t, where, 20*time.Second, nil, "curl", "-g", "-sS", "--max-time", "3", u)
		if r.code != 0 || !strings.Contains(r.out, "lab-") {
			t.Errorf("%s (positive control): %s cannot reach %s: exit %d %s%s", phase, where, u, r.code, r.out, r.err)
		}
	}
}

// pingPattern is an ICMP payload pattern for ping -p, and its bytes.
func pingPattern() (string, []byte) {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b), b
}

func udpTargets(port int, addrs ...netip.Addr) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, "udp:"+netip.AddrPortFrom(a, uint16(port)).String())
	}
	return out
}
