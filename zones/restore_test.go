package zones

import (
	"slices"
	"strings"
	"testing"
)

// A filter table as iptables-save shows it on a host running Docker 28
// besides nszone's leftovers-free state, with a foreign ACCEPT in FORWARD.
const dockerFilter = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -i docker0 -j ACCEPT
COMMIT
`

func TestForwardNeeds(t *testing.T) {
	cases := []struct {
		name, save string
		want       []string
	}{
		{"nothing", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", nil},
		{"docker", dockerFilter, []string{"chain:DOCKER", "chain:DOCKER-FORWARD"}},
		{"old docker", "*filter\n:FORWARD DROP [0:0]\n:DOCKER - [0:0]\n-A FORWARD -o docker0 -j DOCKER\nCOMMIT\n", []string{"chain:DOCKER"}},
		{"libvirt", "*filter\n:LIBVIRT_FWO - [0:0]\n:LIBVIRT_FWI - [0:0]\n-A FORWARD -j LIBVIRT_FWI\n", []string{"chain:LIBVIRT_FWI", "chain:LIBVIRT_FWO"}},
		{"foreign accept", "*filter\n-A FORWARD -i br0 -o eth0 -j ACCEPT\n-A FORWARD -i br1 -j DROP\n-A FORWARD -j ufw-before-forward\n",
			[]string{"rule:-A FORWARD -i br0 -o eth0 -j ACCEPT"}},
		{"nszone's own", "*filter\n:NSZ-FORWARD - [0:0]\n-A FORWARD -m comment --comment nszone -j NSZ-FORWARD\n-A NSZ-FORWARD -i nsz-wan -j ACCEPT\n-A FORWARD -m comment --comment nszone-wan -j ACCEPT\n", nil},
		{"accept elsewhere", "*filter\n-A INPUT -i lo -j ACCEPT\n-A OUTPUT -j ACCEPT\n", nil},
		{"replies only (firewalld, iptables backend)", "*filter\n:FORWARD ACCEPT [0:0]\n:FORWARD_direct - [0:0]\n" +
			"-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT\n" +
			"-A FORWARD -j FORWARD_direct\n-A FORWARD -m conntrack --ctstate INVALID -j DROP\n", nil},
		{"old docker without chains' need", "*filter\n-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n",
			[]string{"rule:-A FORWARD -i docker0 ! -o docker0 -j ACCEPT"}},
	}
	for _, c := range cases {
		if got := forwardNeeds(c.save); !slices.Equal(got, c.want) {
			t.Errorf("%s: forwardNeeds = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDescribeNeeds(t *testing.T) {
	cases := []struct {
		needs []string
		want  string
	}{
		{[]string{"chain:DOCKER-FORWARD"}, "Docker's chains (DOCKER-FORWARD)"},
		{[]string{"chain:DOCKER", "chain:DOCKER-FORWARD", "chain:NETAVARK_FORWARD"}, "Docker's chains (DOCKER, DOCKER-FORWARD) and Podman's chains (NETAVARK_FORWARD)"},
		{[]string{"rule:-A FORWARD -i br0 -j ACCEPT"}, "someone else's forwarding rules (-A FORWARD -i br0 -j ACCEPT)"},
		{[]string{"rule:a", "rule:b", "rule:c", "rule:d"}, "someone else's forwarding rules (a; b; and 2 more)"},
	}
	for _, c := range cases {
		if got := describeNeeds(c.needs); got != c.want {
			t.Errorf("describeNeeds(%q) = %q, want %q", c.needs, got, c.want)
		}
	}
}

func TestSetValue(t *testing.T) {
	h := &hostRecord{SysctlsSet: map[string]string{"net.ipv4.ip_forward": "1"}}
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":           "1",
		"net.ipv6.conf.all.forwarding":  "1", // a record from before SysctlsSet
		"net.ipv6.conf.eth0.accept_ra":  "2",
		"net.ipv6.conf.wlan0.accept_ra": "2",
	} {
		if got := setValue(h, key); got != want {
			t.Errorf("setValue(%s) = %q, want %q", key, got, want)
		}
	}
}

const (
	ip4 = "net.ipv4.ip_forward"
	ip6 = "net.ipv6.conf.all.forwarding"
	ra  = "net.ipv6.conf.eth0.accept_ra"
)

func TestDecideSysctls(t *testing.T) {
	docker := []string{"chain:DOCKER-FORWARD"}
	cases := []struct {
		name     string
		facts    []sysctlFacts
		restore  [][2]string
		leftWant []string // each a prefix of one left line, in order
	}{
		{
			name: "nothing else depends: everything back",
			facts: []sysctlFacts{
				{Key: ra, Before: "1", Set: "2", Now: "2"},
				{Key: ip4, Before: "0", Set: "1", Now: "1"},
				{Key: ip6, Before: "0", Set: "1", Now: "1"},
			},
			restore: [][2]string{{ip4, "0"}, {ip6, "0"}, {ra, "1"}},
		},
		{
			name: "docker needs IPv4 forwarding",
			facts: []sysctlFacts{
				{Key: ip4, Before: "0", Set: "1", Now: "1", Needs: docker},
				{Key: ip6, Before: "0", Set: "1", Now: "1"},
				{Key: ra, Before: "1", Set: "2", Now: "2"},
			},
			restore:  [][2]string{{ip6, "0"}, {ra, "1"}},
			leftWant: []string{"net.ipv4.ip_forward left at 1: Docker's chains (DOCKER-FORWARD) need it"},
		},
		{
			name: "IPv6 forwarding needed: accept_ra stays 2 with it",
			facts: []sysctlFacts{
				{Key: ra, Before: "1", Set: "2", Now: "2"},
				{Key: ip6, Before: "0", Set: "1", Now: "1", Needs: []string{"rule:-A FORWARD -i br0 -j ACCEPT"}},
				{Key: ip4, Before: "0", Set: "1", Now: "1"},
			},
			restore: [][2]string{{ip4, "0"}},
			leftWant: []string{
				"net.ipv6.conf.all.forwarding left at 1: someone else's forwarding rules (-A FORWARD -i br0 -j ACCEPT) need it",
				"net.ipv6.conf.eth0.accept_ra left at 2: net.ipv6.conf.all.forwarding stays 1",
			},
		},
		{
			name: "changed by someone else since: theirs",
			facts: []sysctlFacts{
				{Key: ra, Before: "1", Set: "2", Now: "0"},
				{Key: ip4, Before: "0", Set: "1", Now: "1"},
				{Key: ip6, Before: "0", Set: "1", Now: "1"},
			},
			restore:  [][2]string{{ip4, "0"}, {ip6, "0"}},
			leftWant: []string{"net.ipv6.conf.eth0.accept_ra left at 0: changed since nszone set it to 2 (it was 1 before the first up)"},
		},
		{
			name: "changed wins over needs, and accept_ra follows only a needed forwarding",
			facts: []sysctlFacts{
				{Key: ip6, Before: "0", Set: "1", Now: "0", Needs: docker},
				{Key: ra, Before: "1", Set: "2", Now: "2"},
			},
			restore: [][2]string{{ra, "1"}},
		},
		{
			name: "back already, or gone: nothing to do",
			facts: []sysctlFacts{
				{Key: ip4, Before: "0", Set: "1", Now: "0"},
				{Key: "net.ipv6.conf.gone0.accept_ra", Before: "1", Set: "2", Now: ""},
			},
		},
		{
			name: "forwarding was on before: accept_ra goes back exactly",
			facts: []sysctlFacts{
				{Key: ra, Before: "1", Set: "2", Now: "2"},
			},
			restore: [][2]string{{ra, "1"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			restore, left := decideSysctls(c.facts)
			if !slices.Equal(restore, c.restore) {
				t.Errorf("restore = %q, want %q", restore, c.restore)
			}
			if len(left) != len(c.leftWant) {
				t.Fatalf("left = %q, want %d line(s) starting %q", left, len(c.leftWant), c.leftWant)
			}
			for i := range left {
				if !strings.HasPrefix(left[i], c.leftWant[i]) {
					t.Errorf("left[%d] = %q, want it to start %q", i, left[i], c.leftWant[i])
				}
			}
		})
	}
}
