package zones

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Where the host's real upstream DNS servers can be read when
// /etc/resolv.conf only names a local stub (127.0.0.53 of systemd-resolved,
// 127.0.1.1 of NetworkManager's dnsmasq), which a zone cannot reach.
var upstreamFiles = []string{
	ResolvConf,
	"/run/systemd/resolve/resolv.conf",
	"/run/NetworkManager/no-stub-resolv.conf",
	"/run/NetworkManager/resolv.conf",
}

// ResolvConf is the host's resolver configuration, read first.
const ResolvConf = "/etc/resolv.conf"

// resolvConf is the part of a resolv.conf a zone inherits.
type resolvConf struct {
	servers []netip.Addr
	other   []string // search, domain and options lines
	from    string   // the file the servers were read from
}

func parseResolvConf(b []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			// A scoped address (fe80::1%eth0) names a host interface: useless in a zone.
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Zone() == "" {
				rc.servers = append(rc.servers, a)
			}
		case "search", "domain", "options":
			rc.other = append(rc.other, strings.Join(f, " "))
		}
	}
	return rc
}

// upstreamDNS returns the host's real upstream servers: the first of
// upstreamFiles that names a server a zone can reach (not loopback).
func upstreamDNS(root string) (resolvConf, error) {
	var first resolvConf
	for i, f := range upstreamFiles {
		b, err := os.ReadFile(root + f)
		if err != nil {
			continue
		}
		rc := parseResolvConf(b)
		if i == 0 {
			first = rc
		}
		var usable []netip.Addr
		for _, a := range rc.servers {
			if !a.IsLoopback() && !a.IsUnspecified() {
				usable = append(usable, a)
			}
		}
		if len(usable) > 0 {
			rc.servers, rc.from = usable, f
			if len(rc.other) == 0 {
				rc.other = first.other
			}
			return rc, nil
		}
	}
	return resolvConf{other: first.other}, fmt.Errorf("no upstream DNS server found (only local stubs or none in %s)", strings.Join(upstreamFiles, ", "))
}

// UpstreamDNS returns the host's real upstream DNS servers, as dns: auto
// gives them to a zone, and the file they were read from (root prefixes
// it; "" on the real system).
func UpstreamDNS(root string) (servers []netip.Addr, from string, err error) {
	rc, err := upstreamDNS(root)
	return rc.servers, rc.from, err
}

// zoneResolvConf renders a zone's /etc/netns/ZONE/resolv.conf.
func zoneResolvConf(zone string, servers []netip.Addr, other []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# nszone: DNS for zone %s. Written by `nszone up`; edit the zones file instead.\n", zone)
	if len(servers) == 0 {
		b.WriteString("# This zone has no DNS server.\n")
	}
	for _, o := range other {
		b.WriteString(o + "\n")
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return []byte(b.String())
}

// zoneNsswitch renders the zone's nsswitch.conf: the host's, with hosts
// resolved only from files and DNS, so nss-resolve, mdns or myhostname
// cannot reach a resolver outside the zone.
func zoneNsswitch(host []byte) []byte {
	var b strings.Builder
	b.WriteString("# nszone: name service switch for a zone (hosts: files dns, so no resolver outside the zone is asked).\n")
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && f[0] == "hosts:" {
			line, seen = "hosts: files dns", true
		}
		b.WriteString(line + "\n")
	}
	if !seen {
		b.WriteString("hosts: files dns\n")
	}
	return []byte(b.String())
}
