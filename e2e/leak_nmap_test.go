package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sink"
)

var nmapOpenRE = regexp.MustCompile(`(\d+)/open/(tcp|udp)`)

// runNmap runs nmap at where and returns the open ports it reports, as
// "HOST PORT/PROTO".
func runNmap(t testing.TB, where string, args ...string) []string {
	t.Helper()
	argv := append([]string{"nmap", "-n", "-Pn", "-T4", "--max-rtt-timeout", "300ms", "--max-retries", "1", "--host-timeout", "20s", "-oG", "-"}, args...)
	r := runAt(t, where, 90*time.Second, nil, argv...)
	if r.code != 0 || !strings.Contains(r.out, "Nmap done") {
		t.Fatalf("nmap at %s %v: exit %d\n%s%s", where, args, r.code, r.out, r.err)
	}
	var open []string
	for _, line := range strings.Split(r.out, "\n") {
		if !strings.HasPrefix(line, "Host: ") || !strings.Contains(line, "Ports: ") {
			continue
		}
		host := strings.Fields(line)[1]
		for _, m := range nmapOpenRE.FindAllStringSubmatch(line, -1) {
			open = append(open, host+" "+m[1]+"/"+m[2])
		}
	}
	return open
}

const nmapZones = `version: 1
zones:
  wan:
    allow: [internet]
    dns: [203.0.113.10]
  lan:
    allow: [lan]
  hz:
    allow: [host]
`

// TestLeakNmap scans from a zone with a real scanner (TCP connect, raw SYN
// and UDP scans, both families): nothing is open on the LAN or the host from
// wan; the same scans from lan and hz find the services (positive control).
func TestLeakNmap(t *testing.T) {
	guardHost(t)
	if _, err := exec.LookPath("nmap"); err != nil {
		t.Skip("nmap is not installed (scripts/deps installs it)")
	}
	l := theLab
	// wan's DNS server is on the internet: no DNS opening into the LAN.
	mustRun(t, "up", "-c", writeZones(t, nmapZones))
	sink.Listen(t, atHost, sink.Options{TCP: []int{portHost}, UDP: []int{portHost}})
	_, wanGW := zoneAddrs(t, "wan")
	_, hzGW := zoneAddrs(t, "hz")
	var hzGW6 netip.Addr
	for _, a := range hzGW {
		if a.Is6() {
			hzGW6 = a
		}
	}
	ports := fmt.Sprintf("22,53,80,443,%d", portHost)
	var v4, v6 []string
	for _, a := range append(append([]netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr(), l.LANServer6, l.Gateway6}, wanGW...), hzGW...) {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	scans := [][]string{
		{"-sT", "-p", ports, "192.168.50.0/28"},
		append([]string{"-sT", "-p", ports}, v4...),
		append([]string{"-6", "-sT", "-p", ports}, v6...),
		{"-sS", "-p", ports, l.LANServer4.String(), l.HostAddr4.Addr().String(), wanGW[0].String()},
		{"-6", "-sS", "-p", ports, l.LANServer6.String(), l.HostAddr6.Addr().String()},
		{"-sU", "-p", fmt.Sprintf("53,137,5353,%d", portHost), l.LANServer4.String(), l.HostAddr4.Addr().String()},
		{"-6", "-sU", "-p", fmt.Sprintf("53,137,5353,%d", portHost), l.LANServer6.String(), l.HostAddr6.Addr().String()},
	}
	for _, s := range scans {
		if open := runNmap(t, "wan", s...); len(open) > 0 {
			t.Errorf("nmap %v from wan finds open: %v", s, open)
		}
	}
	// Positive controls: the scanner works, and finds what is allowed.
	want := []struct {
		zone string
		args []string
		open string
	}{
		{"wan", []string{"-sT", "-p", "80", l.InetServer4.String()}, l.InetServer4.String() + " 80/tcp"},
		{"wan", []string{"-6", "-sT", "-p", "80", l.InetServer6.String()}, l.InetServer6.String() + " 80/tcp"},
		{"lan", []string{"-sT", "-p", ports, "192.168.50.0/28"}, l.LANServer4.String() + " 80/tcp"},
		{"lan", []string{"-6", "-sT", "-p", "80", l.LANServer6.String()}, l.LANServer6.String() + " 80/tcp"},
		{"lan", []string{"-sU", "-p", "53", l.LANServer4.String()}, l.LANServer4.String() + " 53/udp"},
		{"hz", []string{"-sT", "-p", ports, l.HostAddr4.Addr().String()}, l.HostAddr4.Addr().String() + fmt.Sprintf(" %d/tcp", portHost)},
		{"hz", []string{"-6", "-sT", "-p", ports, hzGW6.String()}, hzGW6.String() + fmt.Sprintf(" %d/tcp", portHost)},
	}
	for _, w := range want {
		if open := runNmap(t, w.zone, w.args...); !slices.Contains(open, w.open) {
			t.Errorf("positive control: nmap %v from %s finds %v, want %s open", w.args, w.zone, open, w.open)
		}
	}
}

// foreignFirewall is another program's firewall, applied to the host's
// variant (v4, v6 are its iptables commands).
