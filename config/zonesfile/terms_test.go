package zonesfile

import (
	"net/netip"
	"testing"

	"github.com/nszone/nszone/config"
)

func TestParseTerm(t *testing.T) {
	tests := []struct {
		in   string
		want config.Term // Raw is filled in from in
		str  string
	}{
		{"internet", config.Term{Kind: config.TermInternet}, "internet"},
		{"lan", config.Term{Kind: config.TermLAN}, "lan"},
		{"host", config.Term{Kind: config.TermHost}, "host"},
		{"zone:web-2", config.Term{Kind: config.TermZone, Zone: "web-2"}, "zone:web-2"},
		{"192.168.50.10", config.Term{Kind: config.TermAddr, Prefix: pfx("192.168.50.10/32")}, "192.168.50.10"},
		{"192.168.50.10/32", config.Term{Kind: config.TermAddr, Prefix: pfx("192.168.50.10/32")}, "192.168.50.10"},
		{"10.0.0.0/8", config.Term{Kind: config.TermAddr, Prefix: pfx("10.0.0.0/8")}, "10.0.0.0/8"},
		{"0.0.0.0/0", config.Term{Kind: config.TermAddr, Prefix: pfx("0.0.0.0/0")}, "0.0.0.0/0"},
		{"192.168.50.10:22/tcp", config.Term{Kind: config.TermAddr, Prefix: pfx("192.168.50.10/32"), Proto: "tcp", PortLo: 22, PortHi: 22}, "192.168.50.10:22/tcp"},
		{"192.168.50.10:53", config.Term{Kind: config.TermAddr, Prefix: pfx("192.168.50.10/32"), PortLo: 53, PortHi: 53}, "192.168.50.10:53"},
		{"1.2.3.4:0080/udp", config.Term{Kind: config.TermAddr, Prefix: pfx("1.2.3.4/32"), Proto: "udp", PortLo: 80, PortHi: 80}, "1.2.3.4:80/udp"},
		{"1.2.3.4:8000-8080", config.Term{Kind: config.TermAddr, Prefix: pfx("1.2.3.4/32"), PortLo: 8000, PortHi: 8080}, "1.2.3.4:8000-8080"},
		{"1.2.3.4:80-80/tcp", config.Term{Kind: config.TermAddr, Prefix: pfx("1.2.3.4/32"), Proto: "tcp", PortLo: 80, PortHi: 80}, "1.2.3.4:80/tcp"},
		{"10.0.0.0/8:443/tcp", config.Term{Kind: config.TermAddr, Prefix: pfx("10.0.0.0/8"), Proto: "tcp", PortLo: 443, PortHi: 443}, "10.0.0.0/8:443/tcp"},
		{"2001:db8::1", config.Term{Kind: config.TermAddr, Prefix: pfx("2001:db8::1/128")}, "2001:db8::1"},
		{"2001:DB8:0::1", config.Term{Kind: config.TermAddr, Prefix: pfx("2001:db8::1/128")}, "2001:db8::1"},
		{"::1", config.Term{Kind: config.TermAddr, Prefix: pfx("::1/128")}, "::1"},
		{"fd00::/8", config.Term{Kind: config.TermAddr, Prefix: pfx("fd00::/8")}, "fd00::/8"},
		{"[2001:db8::1]:443/tcp", config.Term{Kind: config.TermAddr, Prefix: pfx("2001:db8::1/128"), Proto: "tcp", PortLo: 443, PortHi: 443}, "[2001:db8::1]:443/tcp"},
		{"[fd00::/8]:1-1024", config.Term{Kind: config.TermAddr, Prefix: pfx("fd00::/8"), PortLo: 1, PortHi: 1024}, "[fd00::/8]:1-1024"},
		{"[2001:db8::1]:65535/udp", config.Term{Kind: config.TermAddr, Prefix: pfx("2001:db8::1/128"), Proto: "udp", PortLo: 65535, PortHi: 65535}, "[2001:db8::1]:65535/udp"},
	}
	for _, tt := range tests {
		got, err := parseTerm(tt.in)
		tt.want.Raw = tt.in
		if err != nil || got != tt.want {
			t.Errorf("parseTerm(%q) = %+v, %v\nwant %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("parseTerm(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
		// The canonical form is itself a term meaning the same.
		if back, err := parseTerm(got.String()); err != nil || keyOf(back) != keyOf(got) {
			t.Errorf("round trip of %q: %+v, %v", got.String(), back, err)
		}
	}
}

func TestParseTermErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty allow term"},
		{"inet", `unknown allow term "inet" (want internet, lan, host, zone:NAME, or an address with optional :PORT[-PORT][/tcp|/udp])`},
		{"host:22", `unknown allow term "host:22" (want internet, lan, host, zone:NAME, or an address with optional :PORT[-PORT][/tcp|/udp])`},
		{" lan", `unknown allow term " lan" (want internet, lan, host, zone:NAME, or an address with optional :PORT[-PORT][/tcp|/udp])`},
		{"zone:", `invalid zone name "" in "zone:": must match ^[a-z][a-z0-9-]{0,10}$`},
		{"zone:../x", `invalid zone name "../x" in "zone:../x": must match ^[a-z][a-z0-9-]{0,10}$`},
		{"1.2.3", `invalid address "1.2.3"`},
		{"01.2.3.4", `invalid address "01.2.3.4"`},
		{"1.2.3:80", `invalid address "1.2.3" in "1.2.3:80"`},
		{"1.2.3.4/33", `invalid prefix "1.2.3.4/33"`},
		{"1.2.3.4/24", `prefix 1.2.3.4/24 has host bits set (did you mean 1.2.3.0/24?)`},
		{"fe80::1%eth0", `address "fe80::1%eth0" has a zone (%eth0); scoped addresses are not allowed`},
		{"::ffff:1.2.3.4", `address ::ffff:1.2.3.4 is ipv4-mapped ipv6; write 1.2.3.4`},
		{"1.2.3.4:", `invalid port "" in "1.2.3.4:"`},
		{"1.2.3.4:0", `invalid port 0 in "1.2.3.4:0"`},
		{"1.2.3.4:65536", `invalid port 65536 in "1.2.3.4:65536"`},
		{"1.2.3.4:99999999999999999999999", `invalid port 99999999999999999999999 in "1.2.3.4:99999999999999999999999"`},
		{"1.2.3.4:+80", `invalid port "+80" in "1.2.3.4:+80"`},
		{"1.2.3.4:80-", `invalid port "" in "1.2.3.4:80-"`},
		{"1.2.3.4:80-90-100", `invalid port "90-100" in "1.2.3.4:80-90-100"`},
		{"1.2.3.4:80/tcp/udp", `invalid protocol "tcp/udp" in "1.2.3.4:80/tcp/udp" (want tcp or udp)`},
		{"1.2.3.4:80/TCP", `invalid protocol "TCP" in "1.2.3.4:80/TCP" (want tcp or udp)`},
		{"1.2.3.4:80/", `invalid protocol "" in "1.2.3.4:80/" (want tcp or udp)`},
		{"[2001:db8::1", `missing "]" in "[2001:db8::1"`},
		{"[2001:db8::1]443", `want ":PORT" after "]" in "[2001:db8::1]443"`},
		{"[2001:db8::1]", `brackets without a port in "[2001:db8::1]" (write 2001:db8::1 for any port, or [2001:db8::1]:PORT)`},
		{"[1.2.3.4]:80", `brackets are for ipv6 addresses only in "[1.2.3.4]:80" (write 1.2.3.4:80)`},
		{"2001:db8::1/tcp", `invalid prefix "2001:db8::1/tcp" (an ipv6 address with a port needs brackets: [ADDR]:PORT/PROTO)`},
		{"1.2.3.4/udp", `invalid prefix "1.2.3.4/udp" (a protocol needs a port: ADDR:PORT/PROTO)`},
	}
	for _, tt := range tests {
		if got, err := parseTerm(tt.in); err == nil || err.Error() != tt.want {
			t.Errorf("parseTerm(%q) = %+v, %v\nwant error %s", tt.in, got, err, tt.want)
		}
	}
}

func TestTermStringKinds(t *testing.T) {
	if s := (config.Term{Kind: config.TermKind(42)}).String(); s != "TermKind(42)" {
		t.Errorf("unknown kind renders %q", s)
	}
	if s := config.TermAddr.String(); s != "addr" {
		t.Errorf("TermAddr.String() = %q", s)
	}
	// A Term built by hand (as Default does) renders like a parsed one.
	tm := config.Term{Kind: config.TermAddr, Prefix: netip.MustParsePrefix("2001:db8::/32"), PortLo: 53, PortHi: 53, Proto: "udp"}
	if s := tm.String(); s != "[2001:db8::/32]:53/udp" {
		t.Errorf("String() = %q", s)
	}
}
