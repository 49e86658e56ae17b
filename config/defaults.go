package config

import (
	"net/netip"
	"regexp"
	"slices"
	"sync"
)

// ZoneNameRE is what a zone name must match. Short enough that derived
// interface names (15 bytes max) fit, and free of path characters because
// names become paths under /etc/netns and /run/netns.
// Compiled on first use, as the other patterns here: every command starts
// faster for it.
var ZoneNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9-]{0,10}$`) })

// DefaultLAN is what "lan" means when the file has no lan key: the private,
// shared (CGNAT) and link-local ranges of both families.
var DefaultLAN = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// Default returns the built-in configuration used when there is no zones
// file: wan (internet), lan (lan) and offline (nothing). Each call returns
// a fresh copy the caller may modify.
func Default() *File {
	zone := func(name string, allow ...TermKind) Zone {
		z := Zone{Name: name, DNS: DNS{Auto: true}, IPv6: true, Allow: []Term{}}
		for _, k := range allow {
			t := Term{Kind: k}
			t.Raw = t.String()
			z.Allow = append(z.Allow, t)
		}
		return z
	}
	return &File{
		Version: 1,
		Uplink:  "auto",
		LAN:     slices.Clone(DefaultLAN),
		Zones: []Zone{
			zone("wan", TermInternet),
			zone("lan", TermLAN),
			zone("offline"),
		},
	}
}
