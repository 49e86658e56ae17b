package zones

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/config/zonesfile"
)

func TestAllocatorSkipsWhatIsUsed(t *testing.T) {
	al := &allocator{}
	al.take(netip.MustParsePrefix("10.250.0.0/29")) // a host route over the first two blocks
	al.take(netip.MustParsePrefix("10.250.0.12/30"))
	var got []string
	for i := 0; i < 3; i++ {
		p, err := al.next(pool4, bits4)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
	}
	want := "10.250.0.8/30 10.250.0.16/30 10.250.0.20/30"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	p6, err := al.next(pool6, bits6)
	if err != nil || p6.String() != "fd6e:737a:7a6f::/64" {
		t.Fatalf("v6: %v %v", p6, err)
	}
	p6, _ = al.next(pool6, bits6)
	if p6.String() != "fd6e:737a:7a6f:1::/64" {
		t.Fatalf("second v6 block: %v", p6)
	}
}

func TestAllocatorFullPool(t *testing.T) {
	al := &allocator{used: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if _, err := al.next(pool4, bits4); err == nil || !strings.Contains(err.Error(), "subnet") {
		t.Fatalf("err = %v, want advice to set subnet", err)
	}
}

func TestHostAndZone(t *testing.T) {
	h, z := hostAndZone(netip.MustParsePrefix("10.250.0.4/30"))
	if h.String() != "10.250.0.5/30" || z.String() != "10.250.0.6/30" {
		t.Fatalf("%v %v", h, z)
	}
	h, z = hostAndZone(netip.MustParsePrefix("fd6e:737a:7a6f:2::/64"))
	if h.String() != "fd6e:737a:7a6f:2::1/64" || z.String() != "fd6e:737a:7a6f:2::2/64" {
		t.Fatalf("%v %v", h, z)
	}
}

func TestParseResolvConf(t *testing.T) {
	rc := parseResolvConf([]byte("# c\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\nbogus\n"))
	if len(rc.servers) != 2 || rc.servers[0].String() != "127.0.0.53" || rc.servers[1].String() != "192.0.2.53" {
		t.Fatalf("servers %v", rc.servers)
	}
	if strings.Join(rc.other, "|") != "search example.org|options edns0" {
		t.Fatalf("other %v", rc.other)
	}
}

func TestZoneNsswitch(t *testing.T) {
	got := string(zoneNsswitch([]byte("passwd: files systemd\nhosts: files resolve [!UNAVAIL=return] myhostname dns\n")))
	if !strings.Contains(got, "\nhosts: files dns\n") || strings.Contains(got, "myhostname") || !strings.Contains(got, "passwd: files systemd") {
		t.Fatalf("nsswitch:\n%s", got)
	}
	if got := string(zoneNsswitch(nil)); !strings.Contains(got, "hosts: files dns") {
		t.Fatalf("without a host file:\n%s", got)
	}
}

func testFacts() *facts {
	return &facts{
		uplink: "eth0",
		lan:    append(config.DefaultLAN[:len(config.DefaultLAN):len(config.DefaultLAN)], netip.MustParsePrefix("192.168.50.0/24")),
		addrs:  []netip.Addr{netip.MustParseAddr("192.168.50.2")},
		dns:    resolvConf{servers: []netip.Addr{netip.MustParseAddr("192.168.50.10"), netip.MustParseAddr("2001:db8::53")}},
	}
}

func mustParse(t *testing.T, yaml string) *config.File {
	t.Helper()
	f, err := zonesfile.Parse("zones.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBuildZoneDNS(t *testing.T) {
	f := mustParse(t, `version: 1
zones:
  wan:
    allow: [internet]
  lan:
    allow: [lan]
  off:
    allow: []
  v4:
    allow: [internet]
    ipv6: false
  fixed:
    allow: [lan]
    dns: [203.0.113.53]
`)
	net4 := netip.MustParsePrefix("10.250.0.0/30")
	net6 := netip.MustParsePrefix("fd6e:737a:7a6f::/64")
	build := func(name string) (*desiredZone, error) {
		return buildZone(f, f.Zone(name), net4, net6, testFacts())
	}
	wan, err := build("wan")
	if err != nil {
		t.Fatal(err)
	}
	// The LAN resolver needs an opening for an internet-only zone; the
	// internet one does not.
	if strings.Join(wan.openings, ",") != "192.168.50.10:53" || len(wan.dns) != 2 {
		t.Errorf("wan: dns %v openings %v", wan.dns, wan.openings)
	}
	lan, _ := build("lan")
	if strings.Join(lan.openings, ",") != "[2001:db8::53]:53" {
		t.Errorf("lan: openings %v", lan.openings)
	}
	off, _ := build("off")
	if len(off.dns) != 0 || len(off.policy.Pinholes) != 0 || !strings.Contains(string(off.resolv), "no DNS server") {
		t.Errorf("offline zone got DNS: %v %v\n%s", off.dns, off.policy.Pinholes, off.resolv)
	}
	v4, _ := build("v4")
	if len(v4.dns) != 1 || v4.dns[0].Is6() {
		t.Errorf("ipv6: false zone got %v", v4.dns)
	}
	_, err = build("fixed")
	var cerr *config.Error
	if !errors.As(err, &cerr) || cerr.Line != 14 || !strings.Contains(cerr.Msg, "not reachable") || !strings.Contains(cerr.Msg, "allow internet") {
		t.Errorf("unreachable explicit DNS: %v", err)
	}

	// Without an uplink the terms still decide: the same openings, and an
	// explicit server the terms reach is no error.
	fc := testFacts()
	fc.uplink = ""
	wan, err = buildZone(f, f.Zone("wan"), net4, net6, fc)
	if err != nil || strings.Join(wan.openings, ",") != "192.168.50.10:53" {
		t.Errorf("wan without an uplink: openings %v, %v", wan.openings, err)
	}
	f = mustParse(t, "version: 1\nzones:\n  fixed:\n    allow: [lan, host]\n    dns: [192.168.50.10, 192.168.50.2]\n")
	if _, err := buildZone(f, f.Zone("fixed"), net4, net6, fc); err != nil {
		t.Errorf("explicit DNS in lan and on the host, no uplink: %v", err)
	}
}

func TestBuildZoneTerms(t *testing.T) {
	f := mustParse(t, `version: 1
zones:
  web:
    allow: [internet, "192.168.50.10:22/tcp", host, "zone:lan"]
  lan:
    allow: [lan]
`)
	d, err := buildZone(f, f.Zone("web"), netip.MustParsePrefix("10.250.0.0/30"), netip.Prefix{}, testFacts())
	if err != nil {
		t.Fatal(err)
	}
	p := d.policy
	if !p.Internet || p.LAN || !p.Host || len(p.ToHostIfs) != 1 || p.ToHostIfs[0] != "nsz-lan" {
		t.Errorf("policy %+v", p)
	}
	// The ssh pinhole to the LAN resolver does not reach its port 53: DNS gets its own opening.
	if len(p.Pinholes) != 2 || p.Pinholes[0].Proto != "tcp" || p.Pinholes[0].PortLo != 22 || p.Pinholes[1].PortLo != 53 {
		t.Errorf("pinholes %+v", p.Pinholes)
	}
	if d.pair.HostName != "nsz-web" || d.pair.Zone4.String() != "10.250.0.2/30" || d.pair.Zone6.IsValid() {
		t.Errorf("pair %+v", d.pair)
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := root + p
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// dns: auto finds the real upstream servers behind the usual local stubs.
func TestUpstreamDNS(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"plain resolv.conf", map[string]string{
			"/etc/resolv.conf": "search lan\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"},
			"192.0.2.53 2001:db8::53"},
		{"systemd-resolved stub", map[string]string{
			"/etc/resolv.conf":                 "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n",
			"/run/systemd/resolve/resolv.conf": "nameserver 198.51.100.1\nnameserver 198.51.100.2\n"},
			"198.51.100.1 198.51.100.2"},
		{"NetworkManager dnsmasq", map[string]string{
			"/etc/resolv.conf":                        "nameserver 127.0.1.1\n",
			"/run/NetworkManager/no-stub-resolv.conf": "nameserver 192.0.2.1\n"},
			"192.0.2.1"},
	}
	for _, c := range cases {
		rc, err := upstreamDNS(writeTree(t, c.files))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got []string
		for _, s := range rc.servers {
			got = append(got, s.String())
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s: servers %v, want %s", c.name, got, c.want)
		}
	}
	// The stub's search domains are kept: they are the host's, not the stub's.
	rc, _ := upstreamDNS(writeTree(t, cases[1].files))
	if !strings.Contains(strings.Join(rc.other, "|"), "search corp.example") {
		t.Errorf("search domains lost: %v", rc.other)
	}
	// Only a stub and nothing behind it: an error, and no 127.x server ever.
	rc, err := upstreamDNS(writeTree(t, map[string]string{"/etc/resolv.conf": "nameserver 127.0.0.53\n"}))
	if err == nil || len(rc.servers) != 0 {
		t.Errorf("stub only: %v %v", rc.servers, err)
	}
}
