package main

import (
	"strings"
	"testing"

	"github.com/nszone/nszone/firewall"
)

func TestCounted(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1.0k", 1234: "1.2k", 999949: "999.9k", 999950: "1.0M", 2500000000: "2.5G"} {
		if got := short(n); got != want {
			t.Errorf("short(%d) = %q, want %q", n, got, want)
		}
	}
	c := &firewall.Counters{IPv4: firewall.FamilyCounters{Allowed: firewall.Count{Packets: 1000}, Refused: firewall.Count{Packets: 30}},
		IPv6: firewall.FamilyCounters{Allowed: firewall.Count{Packets: 200}, Refused: firewall.Count{Packets: 7}}}
	if got := counted(c); got != "1.2k/37" {
		t.Errorf("counted = %q", got)
	}
	if got := counted(nil); got != "-" {
		t.Errorf("counted(nil) = %q", got)
	}
}

// log refuses a bad output or zone name as bad usage, before it needs root.
func TestLogRefuses(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"log", "-o", "xml"}, `-o "xml"`},
		{[]string{"log", "../wan"}, `zone "../wan"`},
		{[]string{"log", "--nope"}, "unknown flag"},
	} {
		_, stderr, code := runIn(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
}
