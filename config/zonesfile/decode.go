package zonesfile

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/nszone/nszone/config"
)

// decoder turns a checked yaml.Node tree into a File. Every check reads
// Node.Kind and Node.Tag (YAML 1.2 core schema as yaml v3 resolves it), so
// `on`, `yes` and `"true"` are strings, never booleans, and a number is
// never taken for a string.
type decoder struct {
	name  string
	lines map[string]int // "ZONE subnet"/"ZONE subnet6" -> line, for overlap errors
}

// errf makes an *Error at line. Long strings among args are clipped so a
// megabyte key cannot become a megabyte message.
func (d *decoder) errf(line int, format string, args ...any) *config.Error {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = clip(s, 120)
		}
	}
	return &config.Error{File: d.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// clip shortens s to at most n bytes (on a rune boundary) plus "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// maxString bounds every string value: the longest legitimate one, a DNS
// name with a port, is under 260 bytes.
const maxString = 300

type pair struct{ key, val *yaml.Node }

// mapping returns n's key/value pairs in file order. Keys must be strings
// and unique: yaml v3 only checks duplicates when decoding into Go values.
func (d *decoder) mapping(n *yaml.Node, what string) ([]pair, error) {
	if n.Kind != yaml.MappingNode {
		return nil, d.errf(n.Line, "%s must be a mapping, got %s", what, describe(n))
	}
	seen := make(map[string]int, len(n.Content)/2)
	pairs := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return nil, d.errf(k.Line, "key must be a string, got %s%s", describe(k), quoteHint(k))
		}
		if first, dup := seen[k.Value]; dup {
			return nil, d.errf(k.Line, "duplicate key %q (first at line %d)", k.Value, first)
		}
		seen[k.Value] = k.Line
		pairs = append(pairs, pair{k, v})
	}
	return pairs, nil
}

// known refuses keys not in keys (which are listed sorted in the message).
func (d *decoder) known(pairs []pair, where string, keys ...string) error {
	for _, p := range pairs {
		if !slices.Contains(keys, p.key.Value) {
			return d.errf(p.key.Line, "unknown key %q %s (known: %s)", p.key.Value, where, strings.Join(keys, ", "))
		}
	}
	return nil
}

func find(pairs []pair, key string) *pair {
	for i := range pairs {
		if pairs[i].key.Value == key {
			return &pairs[i]
		}
	}
	return nil
}

func (d *decoder) list(n *yaml.Node, what string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n.Line, "%s must be a list, got %s", what, describe(n))
	}
	return n.Content, nil
}

func (d *decoder) str(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return "", d.errf(n.Line, "%s must be a string, got %s%s", what, describe(n), quoteHint(n))
	}
	if len(n.Value) > maxString {
		return "", d.errf(n.Line, "%s is too long (%d bytes, at most %d)", what, len(n.Value), maxString)
	}
	return n.Value, nil
}

// describe names a node's type (and a scalar's value) for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", clip(n.Value, 60))
		case "!!null":
			if n.Value == "" {
				return "an empty value"
			}
			return "null"
		case "!!int":
			return "the integer " + clip(n.Value, 60)
		case "!!float":
			return "the number " + clip(n.Value, 60)
		case "!!bool":
			return "the boolean " + n.Value
		}
		return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), clip(n.Value, 60))
	}
	return "something else"
}

// quoteHint suggests quoting where YAML read a string as something else:
// `on: x` is fine, but `1: x`, `[zone: lan]` or `- [::1]:53` are not strings.
func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		return ""
	}
	return " (put it in quotes)"
}

func (d *decoder) file(root *yaml.Node) (*config.File, error) {
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, d.errf(0, "empty file (want a mapping with version: 1 and zones)")
	}
	top, err := d.mapping(root, "the top level")
	if err != nil {
		return nil, err
	}
	// The version comes first: a file for another version may have other keys.
	v := find(top, "version")
	switch {
	case v == nil:
		return nil, d.errf(root.Line, `missing key "version" (want version: 1)`)
	case v.val.Kind != yaml.ScalarNode || v.val.Tag != "!!int":
		return nil, d.errf(v.val.Line, "version must be the integer 1, got %s", describe(v.val))
	case v.val.Value != "1":
		return nil, d.errf(v.val.Line, "unsupported version %s (this nszone reads version 1)", v.val.Value)
	}
	if err := d.known(top, "at the top level", "check", "lan", "uplink", "version", "zones"); err != nil {
		return nil, err
	}
	if find(top, "zones") == nil {
		return nil, d.errf(root.Line, `missing key "zones" (write zones: {} for none)`)
	}

	f := &config.File{Path: d.name, Version: 1, Uplink: "auto", LAN: slices.Clone(config.DefaultLAN), Zones: []config.Zone{}}
	for _, p := range top {
		switch p.key.Value {
		case "uplink":
			f.Uplink, f.UplinkLine, err = d.uplink(p.val)
		case "lan":
			f.LAN, err = d.lan(p.val)
		case "zones":
			f.Zones, err = d.zones(p.val)
		case "check":
			f.Check, err = d.check(p.val)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := d.references(f); err != nil {
		return nil, err
	}
	if err := d.published(f); err != nil {
		return nil, err
	}
	if err := d.overlaps(f, "subnet", func(z *config.Zone) netip.Prefix { return z.Subnet }); err != nil {
		return nil, err
	}
	if err := d.overlaps(f, "subnet6", func(z *config.Zone) netip.Prefix { return z.Subnet6 }); err != nil {
		return nil, err
	}
	return f, nil
}

func (d *decoder) uplink(n *yaml.Node) (string, int, error) {
	s, err := d.str(n, "uplink")
	if err != nil {
		return "", 0, err
	}
	if s != "auto" {
		if why := ifnameProblem(s); why != "" {
			return "", 0, d.errf(n.Line, "invalid uplink %q: %s", s, why)
		}
	}
	return s, n.Line, nil
}

// ifnameProblem says why s cannot be a Linux interface name (the kernel's
// dev_valid_name), or returns "".
func ifnameProblem(s string) string {
	switch {
	case s == "":
		return "an interface name cannot be empty"
	case len(s) > 15:
		return "an interface name is at most 15 bytes"
	case s == "." || s == "..":
		return `"." and ".." are not interface names`
	case strings.ContainsAny(s, "/:"):
		return `an interface name cannot contain "/" or ":"`
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "an interface name cannot contain whitespace or control characters"
	}
	return ""
}

func (d *decoder) lan(n *yaml.Node) ([]netip.Prefix, error) {
	items, err := d.list(n, "lan")
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(items))
	seen := make(map[netip.Prefix]int, len(items))
	for _, it := range items {
		s, err := d.str(it, "lan entry")
		if err != nil {
			return nil, err
		}
		p, err := parsePrefix(s, s)
		if err != nil {
			return nil, d.errf(it.Line, "%v", err)
		}
		if first, dup := seen[p]; dup {
			return nil, d.errf(it.Line, "duplicate lan entry %s (first at line %d)", s, first)
		}
		seen[p] = it.Line
		out = append(out, p)
	}
	return out, nil
}

func (d *decoder) zones(n *yaml.Node) ([]config.Zone, error) {
	pairs, err := d.mapping(n, "zones")
	if err != nil {
		return nil, err
	}
	zs := make([]config.Zone, 0, len(pairs))
	for _, p := range pairs {
		if !config.ZoneNameRE().MatchString(p.key.Value) {
			return nil, d.errf(p.key.Line, "invalid zone name %q: must match %s", p.key.Value, config.ZoneNameRE())
		}
		z, err := d.zone(p.key.Value, p.key.Line, p.val)
		if err != nil {
			return nil, err
		}
		zs = append(zs, z)
	}
	return zs, nil
}

func (d *decoder) zone(name string, line int, n *yaml.Node) (config.Zone, error) {
	z := config.Zone{Name: name, Line: line, Allow: []config.Term{}, DNS: config.DNS{Auto: true, Line: line}, IPv6: true,
		Access: config.Access{Confine: config.ConfineDesktop}}
	where := fmt.Sprintf("in zone %q", name)
	pairs, err := d.mapping(n, fmt.Sprintf("zone %q", name))
	if err != nil {
		return z, err
	}
	if err := d.known(pairs, where, "allow", "confine", "dns", "groups", "ipv6", "log", "no_new_privs", "publish", "subnet", "subnet6", "users", "via"); err != nil {
		return z, err
	}
	// ipv6 first: allow, dns and subnet6 are checked against it.
	if p := find(pairs, "ipv6"); p != nil {
		if z.IPv6, err = d.boolean(*p, where); err != nil {
			return z, err
		}
	}
	for _, p := range pairs {
		switch p.key.Value {
		case "allow":
			z.Allow, err = d.allow(&z, p.val)
		case "dns":
			z.DNS, err = d.dns(&z, p.key.Line, p.val)
		case "subnet":
			z.Subnet, err = d.subnet(&z, p.val, false)
		case "subnet6":
			z.Subnet6, err = d.subnet(&z, p.val, true)
		case "users":
			z.Access.Users, err = d.names(p.val, "user", where)
		case "groups":
			z.Access.Groups, err = d.names(p.val, "group", where)
		case "confine":
			if p.val.Kind != yaml.ScalarNode || p.val.Tag != "!!str" || !slices.Contains(config.Confinements, p.val.Value) {
				err = d.errf(p.val.Line, "confine %s must be one of %s, got %s", where, strings.Join(config.Confinements, ", "), describe(p.val))
			}
			z.Access.Confine = p.val.Value
		case "publish":
			z.Publish, err = d.publish(&z, p.val)
		case "via":
			z.Via, err = d.via(&z, p.val)
			z.ViaLine = p.val.Line
		case "log":
			var on bool
			on, err = d.boolean(p, where)
			z.NoLog = !on
		case "no_new_privs":
			z.Access.NoNewPrivs, err = d.boolean(p, where)
		}
		if err != nil {
			return z, err
		}
	}
	switch {
	case z.Via != "" && !slices.ContainsFunc(z.Allow, func(t config.Term) bool { return t.Kind == config.TermInternet }):
		return z, d.errf(z.ViaLine, "via %s in zone %q carries the zone's internet traffic, but its allow list has no internet", z.Via, name)
	case z.Via != "" && z.DNS.Auto:
		// The host's resolvers are reached outside the tunnel: the classic
		// DNS leak of a VPN.
		return z, d.errf(z.ViaLine, "via %s in zone %q needs a dns: list of servers reached through %s (dns: auto would ask the host's resolvers outside it)", z.Via, name, z.Via)
	}
	return z, nil
}

// boolean reads a key whose value is true or false.
func (d *decoder) boolean(p pair, where string) (bool, error) {
	if p.val.Kind != yaml.ScalarNode || p.val.Tag != "!!bool" {
		return false, d.errf(p.val.Line, "%s %s must be true or false, got %s", p.key.Value, where, describe(p.val))
	}
	return strings.EqualFold(p.val.Value, "true"), nil
}

// accountRE is what users: and groups: accept: the portable user and group
// names of POSIX and shadow's useradd (at most 32 bytes, an optional
// trailing $ for machine accounts). A name that is all digits is refused: it
// would read as a uid or gid, and entry compares names.
var accountRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,30}\$?$`) })

// names reads users: or groups: (kind "user" or "group"): a list of
// distinct account names.
func (d *decoder) names(n *yaml.Node, kind, where string) ([]string, error) {
	items, err := d.list(n, kind+"s "+where)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	seen := map[string]int{}
	for _, it := range items {
		if it.Kind == yaml.ScalarNode && it.Tag == "!!int" {
			return nil, d.errf(it.Line, "%ss %s: %s is a number; write the %s's name", kind, where, it.Value, kind)
		}
		s, err := d.str(it, kind+" "+where)
		if err != nil {
			return nil, err
		}
		if !accountRE().MatchString(s) {
			return nil, d.errf(it.Line, "invalid %s name %q %s: must match %s", kind, s, where, accountRE())
		}
		if first, dup := seen[s]; dup {
			return nil, d.errf(it.Line, "duplicate %s %q %s (first at line %d)", kind, s, where, first)
		}
		seen[s] = it.Line
		out = append(out, s)
	}
	return out, nil
}

func (d *decoder) allow(z *config.Zone, n *yaml.Node) ([]config.Term, error) {
	where := fmt.Sprintf("in zone %q", z.Name)
	items, err := d.list(n, "allow "+where)
	if err != nil {
		return nil, err
	}
	terms := make([]config.Term, 0, len(items))
	seen := make(map[termKey]config.Term, len(items))
	for _, it := range items {
		s, err := d.str(it, "allow term "+where)
		if err != nil {
			return nil, err
		}
		t, err := parseTerm(s)
		if err != nil {
			return nil, d.errf(it.Line, "%v", err)
		}
		t.Line = it.Line
		switch first, dup := seen[keyOf(t)]; {
		case t.Kind == config.TermZone && t.Zone == z.Name:
			return nil, d.errf(t.Line, "zone %q cannot allow itself (%q)", z.Name, s)
		case !z.IPv6 && isIPv6(t):
			return nil, d.errf(t.Line, "zone %q has ipv6: false but allows the ipv6 address %q", z.Name, s)
		case dup && first.Raw == s:
			return nil, d.errf(t.Line, "duplicate allow term %q %s (first at line %d)", s, where, first.Line)
		case dup:
			return nil, d.errf(t.Line, "duplicate allow term %q %s (same as %q at line %d)", s, where, first.Raw, first.Line)
		}
		seen[keyOf(t)] = t
		terms = append(terms, t)
	}
	return terms, nil
}

func (d *decoder) dns(z *config.Zone, line int, n *yaml.Node) (config.DNS, error) {
	dns := config.DNS{Line: line}
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "auto":
		dns.Auto = true
		return dns, nil
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "none":
		return dns, nil
	case n.Kind != yaml.SequenceNode:
		hint := ""
		if _, err := netip.ParseAddr(n.Value); err == nil && n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf(" (write dns: [%s])", n.Value)
		}
		return dns, d.errf(n.Line, "dns in zone %q must be auto, none or a list of addresses, got %s%s", z.Name, describe(n), hint)
	}
	seen := make(map[netip.Addr]int, len(n.Content))
	for _, it := range n.Content {
		s, err := d.str(it, fmt.Sprintf("dns server in zone %q", z.Name))
		if err != nil {
			return dns, err
		}
		ip, err := netip.ParseAddr(s)
		switch first, dup := seen[ip]; {
		case err != nil:
			return dns, d.errf(it.Line, "invalid dns server %q in zone %q", s, z.Name)
		case ip.Zone() != "":
			return dns, d.errf(it.Line, "dns server %q in zone %q has a zone (%%%s); scoped addresses are not allowed", s, z.Name, ip.Zone())
		case ip.Is4In6():
			return dns, d.errf(it.Line, "dns server %s in zone %q is ipv4-mapped ipv6; write %s", s, z.Name, ip.Unmap())
		case ip.IsUnspecified() || ip.IsMulticast():
			return dns, d.errf(it.Line, "dns server %s in zone %q is not a unicast address", s, z.Name)
		case ip.Is6() && !z.IPv6:
			return dns, d.errf(it.Line, "zone %q has ipv6: false but lists the ipv6 dns server %s", z.Name, s)
		case dup:
			return dns, d.errf(it.Line, "duplicate dns server %s in zone %q (first at line %d)", s, z.Name, first)
		}
		seen[ip] = it.Line
		dns.Servers = append(dns.Servers, ip)
	}
	return dns, nil
}

// Zone subnets must not fall in ranges a link cannot use.
var (
	reserved4 = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("224.0.0.0/3"), // multicast and 240/4
	}
	reserved6 = []netip.Prefix{
		netip.MustParsePrefix("::/8"), // unspecified, loopback, ipv4-mapped
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("ff00::/8"),
	}
)

func (d *decoder) subnet(z *config.Zone, n *yaml.Node, v6 bool) (netip.Prefix, error) {
	key, lo, hi, reserved, other := "subnet", 16, 30, reserved4, "ipv6 goes in subnet6"
	if v6 {
		key, lo, hi, reserved, other = "subnet6", 48, 126, reserved6, "ipv4 goes in subnet"
		if !z.IPv6 {
			return netip.Prefix{}, d.errf(n.Line, "zone %q has ipv6: false but sets subnet6", z.Name)
		}
	}
	s, err := d.str(n, fmt.Sprintf("%s in zone %q", key, z.Name))
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, err := netip.ParseAddr(s); err == nil {
			return p, d.errf(n.Line, "%s %q in zone %q needs a prefix length (/%d to /%d)", key, s, z.Name, lo, hi)
		}
		return p, d.errf(n.Line, "invalid %s %q in zone %q", key, s, z.Name)
	}
	if p.Addr().Is6() == !v6 || p.Addr().Is4In6() {
		return p, d.errf(n.Line, "%s %s in zone %q has the wrong address family (%s)", key, s, z.Name, other)
	}
	if p.Bits() < lo || p.Bits() > hi {
		return p, d.errf(n.Line, "%s %s in zone %q must be /%d to /%d", key, s, z.Name, lo, hi)
	}
	if p != p.Masked() {
		return p, d.errf(n.Line, "%s %s in zone %q has host bits set (did you mean %s?)", key, s, z.Name, p.Masked())
	}
	for _, r := range reserved {
		if r.Overlaps(p) {
			return p, d.errf(n.Line, "%s %s in zone %q is inside reserved range %s", key, s, z.Name, r)
		}
	}
	if d.lines == nil {
		d.lines = make(map[string]int)
	}
	d.lines[z.Name+" "+key] = n.Line
	return p, nil
}

// references checks zone:NAME terms once every zone is known.
func (d *decoder) references(f *config.File) error {
	names := make(map[string]bool, len(f.Zones))
	for _, z := range f.Zones {
		names[z.Name] = true
	}
	for _, z := range f.Zones {
		for _, t := range z.Allow {
			if t.Kind == config.TermZone && !names[t.Zone] {
				return d.errf(t.Line, "zone %q allows unknown zone %q", z.Name, t.Zone)
			}
		}
	}
	return nil
}

// overlaps refuses zone subnets that overlap. Prefixes either nest or are
// disjoint, so after sorting by address any overlap shows between
// neighbours: n log n, not n², for files with many zones.
func (d *decoder) overlaps(f *config.File, key string, get func(*config.Zone) netip.Prefix) error {
	type sub struct {
		p netip.Prefix
		z *config.Zone
	}
	var subs []sub
	for i := range f.Zones {
		if p := get(&f.Zones[i]); p.IsValid() {
			subs = append(subs, sub{p, &f.Zones[i]})
		}
	}
	slices.SortStableFunc(subs, func(a, b sub) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return a.p.Bits() - b.p.Bits()
	})
	for i := 1; i < len(subs); i++ {
		a, b := subs[i-1], subs[i]
		if !a.p.Overlaps(b.p) {
			continue
		}
		if a.z.Line > b.z.Line { // report at the later zone
			a, b = b, a
		}
		return d.errf(d.lines[b.z.Name+" "+key], "%s %s of zone %q overlaps %s %s of zone %q (line %d)",
			key, b.p, b.z.Name, key, a.p, a.z.Name, d.lines[a.z.Name+" "+key])
	}
	return nil
}

func (d *decoder) check(n *yaml.Node) (config.Check, error) {
	var c config.Check
	pairs, err := d.mapping(n, "check")
	if err != nil {
		return c, err
	}
	if err := d.known(pairs, "in check", "dns", "internet", "lan"); err != nil {
		return c, err
	}
	for _, p := range pairs {
		key := p.key.Value
		items, err := d.list(p.val, "check."+key)
		if err != nil {
			return c, err
		}
		// Non-nil even when empty: an explicit [] means "probe nothing",
		// while nil (absent) leaves the choice to `nszone check`.
		out := make([]string, 0, len(items))
		seen := make(map[string]int, len(items))
		for _, it := range items {
			s, err := d.str(it, "check."+key+" entry")
			if err != nil {
				return c, err
			}
			if key == "dns" {
				if !validName(s) {
					return c, d.errf(it.Line, "invalid dns name %q in check.dns", s)
				}
			} else if why := targetProblem(s); why != "" {
				return c, d.errf(it.Line, "invalid check target %q in check.%s: %s", s, key, why)
			}
			if first, dup := seen[s]; dup {
				return c, d.errf(it.Line, "duplicate entry %q in check.%s (first at line %d)", s, key, first)
			}
			seen[s] = it.Line
			out = append(out, s)
		}
		switch key {
		case "internet":
			c.Internet = out
		case "lan":
			c.LAN = out
		case "dns":
			c.DNS = out
		}
	}
	return c, nil
}

// targetProblem says what is wrong with a HOST:PORT or [V6]:PORT probe
// target, or returns "".
func targetProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "want HOST:PORT or [IPV6]:PORT"
	}
	if _, err := parsePort(port, s); err != nil {
		return "port must be 1-65535"
	}
	bracket := strings.HasPrefix(s, "[")
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil && bracket:
		return "brackets are for ipv6 addresses only"
	case err != nil && !validName(host):
		return "invalid host name or address"
	case err != nil:
		return ""
	case ip.Zone() != "":
		return "scoped addresses are not allowed"
	case ip.Is4In6():
		return "ipv4-mapped ipv6 addresses are not allowed"
	case ip.Is4() && bracket:
		return "brackets are for ipv6 addresses only"
	}
	return ""
}

// validName reports whether s is a DNS name (letters, digits, '-', '_';
// labels of 1-63 bytes; an optional final dot). All-numeric names are
// refused: "1.2.3" is a broken address, not a name.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || strings.Trim(s, "0123456789.") == "" {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
