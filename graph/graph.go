// Package graph draws a zones file (`nszone graph`): the host, its uplink,
// the LAN, the internet and every zone, each zone joined to the host by its
// link and with one arrow per place its policy lets it open connections
// to. It is drawn from the file alone, so it works before any zone is up;
// what only `up` decides (the uplink auto picks, DNS openings, subnets
// taken from the pool) is named as such. It is apart from zones, which
// only lends it the names of things, so that nothing that links zones
// (the setuid nszone-enter) links the drawing.
package graph

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/zones"
)

// Formats Render draws.
const (
	DOT     = "dot"
	Mermaid = "mermaid"
)

// Formats lists the formats Render draws.
var Formats = []string{DOT, Mermaid}

// Node ids of the fixed parts of the picture.
const (
	gHost     = "host"
	gUplink   = "uplink"
	gLAN      = "lan"
	gInternet = "internet"
)

// graphNode is one box of the picture.
type graphNode struct {
	id    string
	kind  string   // host, uplink, lan, internet, zone, closed (a zone allowed nothing)
	lines []string // the label, first line the title
}

// graphEdge is a link (a wire, no direction) or a policy arrow.
type graphEdge struct {
	from, to string
	kind     string // link, wire (host to the outside), allow
	label    []string
}

type picture struct {
	title string
	nodes []graphNode
	zones []graphNode // inside the host
	edges []graphEdge
}

// Render draws f in format (DOT or Mermaid).
func Render(f *config.File, format string) (string, error) {
	g := build(f)
	switch format {
	case DOT:
		return g.dot(), nil
	case Mermaid:
		return g.mermaid(), nil
	}
	return "", fmt.Errorf("unknown graph format %q (want %s)", format, strings.Join(Formats, " or "))
}

func build(f *config.File) *picture {
	g := &picture{title: "nszone: " + zones.FileName(f.Path)}
	uplink := "uplink " + f.Uplink
	if f.Uplink == "auto" || f.Uplink == "" {
		uplink = "uplink: auto\n(the default route's interface)"
	}
	lan := []string{"LAN"}
	for _, p := range f.LAN {
		lan = append(lan, p.String())
	}
	lan = append(lan, "+ the uplink's own subnets")
	g.nodes = []graphNode{
		{id: gHost, kind: "host", lines: []string{"host", "(its own addresses)"}},
		{id: gUplink, kind: "uplink", lines: strings.Split(uplink, "\n")},
		{id: gLAN, kind: "lan", lines: lan},
		{id: gInternet, kind: "internet", lines: []string{"internet", "(outside lan and the host)"}},
	}
	g.edges = append(g.edges,
		graphEdge{from: gHost, to: gUplink, kind: "wire"},
		graphEdge{from: gUplink, to: gLAN, kind: "wire"},
		graphEdge{from: gUplink, to: gInternet, kind: "wire"},
	)
	for i := range f.Zones {
		z := &f.Zones[i]
		id := zoneNodeID(z.Name)
		n := graphNode{id: id, kind: "zone", lines: []string{"zone " + z.Name}}
		if len(z.Allow) == 0 {
			n.kind = "closed"
			n.lines = append(n.lines, "allows nothing", "(loopback only)")
		}
		n.lines = append(n.lines, "dns: "+graphDNS(z))
		if !z.IPv6 {
			n.lines = append(n.lines, "IPv4 only")
		}
		if z.Subnet.IsValid() {
			n.lines = append(n.lines, "subnet "+z.Subnet.String())
		}
		if z.Subnet6.IsValid() {
			n.lines = append(n.lines, "subnet "+z.Subnet6.String())
		}
		if z.Via != "" {
			n.lines = append(n.lines, "internet only via "+z.Via)
		}
		g.zones = append(g.zones, n)
		g.edges = append(g.edges, graphEdge{from: id, to: gHost, kind: "link", label: []string{zones.HostIf(z.Name)}})

		// One arrow per destination, labelled with every term that leads there.
		var order []string
		labels := map[string][]string{}
		add := func(to, what string) {
			if _, ok := labels[to]; !ok {
				order = append(order, to)
			}
			labels[to] = append(labels[to], what)
		}
		for _, t := range z.Allow {
			switch t.Kind {
			case config.TermInternet:
				add(gInternet, "internet")
			case config.TermLAN:
				add(gLAN, "lan")
			case config.TermHost:
				add(gHost, "host")
			case config.TermZone:
				add(zoneNodeID(t.Zone), t.String())
			case config.TermAddr:
				for _, to := range addrSide(t.Prefix, f.LAN) {
					add(to, t.String())
				}
			}
		}
		if !z.DNS.Auto {
			for _, s := range z.DNS.Servers {
				for _, to := range addrSide(netip.PrefixFrom(s, s.BitLen()), f.LAN) {
					add(to, "dns "+s.String())
				}
			}
		}
		for _, to := range order {
			g.edges = append(g.edges, graphEdge{from: id, to: to, kind: "allow", label: labels[to]})
		}
		// Published ports: arrows into the zone, from the LAN (and the host)
		// or, on the loopback, from the host alone.
		var fromLAN, fromHost []string
		for _, p := range z.Publish {
			fromHost = append(fromHost, "publish "+p.Raw)
			if !p.LoopbackOnly() {
				fromLAN = append(fromLAN, "publish "+p.Raw)
			}
		}
		if len(fromLAN) > 0 {
			g.edges = append(g.edges, graphEdge{from: gLAN, to: id, kind: "allow", label: fromLAN})
		}
		if len(fromHost) > 0 {
			g.edges = append(g.edges, graphEdge{from: gHost, to: id, kind: "allow", label: fromHost})
		}
	}
	return g
}

func graphDNS(z *config.Zone) string {
	switch {
	case z.DNS.Auto && len(z.Allow) == 0:
		return "none"
	case z.DNS.Auto:
		return "auto"
	case len(z.DNS.Servers) == 0:
		return "none"
	}
	var s []string
	for _, a := range z.DNS.Servers {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// addrSide says where an address term leads: into the LAN, the internet, or
// (a prefix that spans both) to each.
func addrSide(p netip.Prefix, lan []netip.Prefix) []string {
	overlaps := false
	for _, l := range lan {
		if l.Bits() <= p.Bits() && l.Contains(p.Addr()) {
			return []string{gLAN}
		}
		if l.Overlaps(p) {
			overlaps = true
		}
	}
	if overlaps {
		return []string{gLAN, gInternet}
	}
	return []string{gInternet}
}

func zoneNodeID(name string) string { return "zone_" + strings.ReplaceAll(name, "-", "_") }

// The legend, the same in both formats.
var graphLegend = []string{
	"arrows: what a zone may open connections to; replies come back, everything else is denied",
	"dns auto: the host's resolvers, through a port-53 opening where the policy does not reach them (see nszone plan)",
}

// Colours of the picture.
const (
	colAllow = "#2e7d32"
	colWire  = "#757575"
	colZone  = "#e3f2fd"
	colShut  = "#eeeeee"
	colHost  = "#fff8e1"
	colOut   = "#fce4ec"
)

func (g *picture) dot() string {
	var b strings.Builder
	q := dotQuote
	fmt.Fprintf(&b, "// %s\n// Render: dot -Tsvg -o zones.svg\n", g.title)
	b.WriteString("digraph nszone {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, labelloc=t, label=%s, nodesep=0.4, ranksep=0.9];\n",
		q(g.title+"\n"+strings.Join(graphLegend, "\n")))
	b.WriteString("  node [fontname=\"Helvetica\", fontsize=11, shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\"];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("  subgraph cluster_host {\n")
	fmt.Fprintf(&b, "    label=%s; style=\"rounded,dashed\"; color=%q;\n", q("this machine"), colWire)
	for _, n := range append(slices.Clone(g.zones), g.nodes[0], g.nodes[1]) {
		fmt.Fprintf(&b, "    %s [label=%s%s];\n", q(n.id), q(strings.Join(n.lines, "\n")), dotStyle(n.kind))
	}
	b.WriteString("  }\n")
	for _, n := range g.nodes[2:] {
		fmt.Fprintf(&b, "  %s [label=%s%s];\n", q(n.id), q(strings.Join(n.lines, "\n")), dotStyle(n.kind))
	}
	for _, e := range g.edges {
		attrs := ""
		switch e.kind {
		case "wire":
			attrs = fmt.Sprintf("dir=none, penwidth=2, color=%q", colWire)
		case "link":
			attrs = fmt.Sprintf("dir=none, style=dashed, color=%q, fontcolor=%q", colWire, colWire)
		case "allow":
			attrs = fmt.Sprintf("color=%q, fontcolor=%q, penwidth=1.5", colAllow, colAllow)
		}
		if len(e.label) > 0 {
			attrs += ", label=" + q(strings.Join(e.label, "\n"))
		}
		fmt.Fprintf(&b, "  %s -> %s [%s];\n", q(e.from), q(e.to), attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

func dotStyle(kind string) string {
	switch kind {
	case "zone":
		return fmt.Sprintf(", fillcolor=%q", colZone)
	case "closed":
		return fmt.Sprintf(", fillcolor=%q, style=\"rounded,filled,dashed\"", colShut)
	case "host", "uplink":
		return fmt.Sprintf(", fillcolor=%q", colHost)
	case "internet":
		return fmt.Sprintf(", shape=ellipse, style=filled, fillcolor=%q", colOut)
	case "lan":
		return fmt.Sprintf(", fillcolor=%q", colOut)
	}
	return ""
}

// dotQuote makes s a DOT string: quotes and backslashes escaped, newlines
// as centred line breaks.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func (g *picture) mermaid() string {
	var b strings.Builder
	oneLine := strings.Map(func(r rune) rune {
		if r < ' ' {
			return ' '
		}
		return r
	}, g.title)
	fmt.Fprintf(&b, "%%%% %s\n", oneLine)
	for _, l := range graphLegend {
		fmt.Fprintf(&b, "%%%% %s\n", l)
	}
	b.WriteString("flowchart LR\n")
	b.WriteString("  subgraph machine [\"this machine\"]\n")
	for _, n := range append(slices.Clone(g.zones), g.nodes[0], g.nodes[1]) {
		fmt.Fprintf(&b, "    %s%s\n", n.id, mermaidShape(n))
	}
	b.WriteString("  end\n")
	for _, n := range g.nodes[2:] {
		fmt.Fprintf(&b, "  %s%s\n", n.id, mermaidShape(n))
	}
	var allow, link []int
	for i, e := range g.edges {
		arrow := "---"
		switch e.kind {
		case "allow":
			arrow = "-->"
			allow = append(allow, i)
		case "link":
			arrow = "-.-"
			link = append(link, i)
		}
		if len(e.label) > 0 {
			fmt.Fprintf(&b, "  %s %s|%s| %s\n", e.from, arrow, mermaidQuote(strings.Join(e.label, "\n")), e.to)
		} else {
			fmt.Fprintf(&b, "  %s %s %s\n", e.from, arrow, e.to)
		}
	}
	fmt.Fprintf(&b, "  classDef zone fill:%s,stroke:#1565c0\n", colZone)
	fmt.Fprintf(&b, "  classDef closed fill:%s,stroke:#9e9e9e,stroke-dasharray:4 3\n", colShut)
	fmt.Fprintf(&b, "  classDef host fill:%s,stroke:#f9a825\n", colHost)
	fmt.Fprintf(&b, "  classDef outside fill:%s,stroke:#ad1457\n", colOut)
	for _, n := range append(append([]graphNode{}, g.zones...), g.nodes...) {
		class := n.kind
		switch n.kind {
		case "uplink":
			class = "host"
		case "lan", "internet":
			class = "outside"
		}
		fmt.Fprintf(&b, "  class %s %s\n", n.id, class)
	}
	if len(allow) > 0 {
		fmt.Fprintf(&b, "  linkStyle %s stroke:%s,stroke-width:2px,color:%s\n", joinInts(allow), colAllow, colAllow)
	}
	if len(link) > 0 {
		fmt.Fprintf(&b, "  linkStyle %s stroke:%s\n", joinInts(link), colWire)
	}
	return b.String()
}

func mermaidShape(n graphNode) string {
	label := mermaidQuote(strings.Join(n.lines, "\n"))
	if n.kind == "internet" {
		return "((" + label + "))"
	}
	return "[" + label + "]"
}

// mermaidQuote makes s a quoted Mermaid label: quotes as entities, line
// breaks as <br/>.
func mermaidQuote(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", "<br/>")
	return `"` + r.Replace(s) + `"`
}

func joinInts(is []int) string {
	s := make([]string, len(is))
	for i, n := range is {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
