package zones

import (
	"net/netip"
	"time"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// Commits hears who committed each transaction to the host's nf_tables
// rulesets, by thread id, in a range of generations (nft.Commits.By).
type Commits interface {
	By(from, to uint32, timeout time.Duration) ([]int, error)
	Close()
}

// Kernel is everything the reconciler asks of the host besides the rules of
// its walls (Manager.Firewall, HostWall and Inner): namespaces, links,
// addresses, routes, sysctls and processes. The real one (kernel_linux.go)
// is veth's netlink plumbing; zonestest.Kernel keeps the same state in
// memory for unit tests of Up, Down, Plan and Status.
type Kernel interface {
	// NamespaceID identifies the namespace pinned as name: an error wrapping
	// fs.ErrNotExist without a pin, netns.ErrStalePin when nothing is mounted on it.
	NamespaceID(name string) (netns.NsID, error)
	// Namespaces lists the names pinned in netns.PinDir.
	Namespaces() ([]string, error)
	// NamespaceHasAlias reports whether namespace name holds a link with alias.
	NamespaceHasAlias(name, alias string) (bool, error)
	// CreateNamespace pins a new namespace as name, marked with alias; without
	// ipv6 it has IPv6 turned off.
	CreateNamespace(name, alias string, ipv6 bool) (netns.NsID, error)
	// DeleteNamespace unpins namespace name; no pin is success.
	DeleteNamespace(name string) error

	// LinkExists reports whether the host has a link called name.
	LinkExists(name string) (bool, error)
	// LinksWithAlias lists the host's links whose alias starts with prefix, name -> alias.
	LinksWithAlias(prefix string) (map[string]string, error)
	// HostLinks reads the host's side of every zone's link (links and
	// addresses) at once, for a convergence of many zones to hand to each
	// zone's EnsurePair or InspectPair instead of each asking on its own.
	HostLinks() (*veth.HostLinks, error)
	// EnsurePair makes p's veth pair, addresses and routes as p says; host,
	// when not nil, is the host's side as HostLinks read it.
	EnsurePair(p veth.Pair, host *veth.HostLinks) (changed bool, err error)
	// InspectPair says what of p is missing or different; nothing when
	// whole. host is as for EnsurePair.
	InspectPair(p veth.Pair, host *veth.HostLinks) ([]string, error)
	// CutShort reports whether the host link hostName is the unmarked end of
	// a pair into zone whose creation was cut short (ours, to make anew).
	CutShort(zone, hostName string) bool
	// DeletePair deletes the host link hostName, only when it carries alias
	// (or is the unmarked host end of a pair into zone, cut short).
	DeletePair(zone, hostName, alias string) error

	// EnsureVia, InspectVia and DeleteVia keep a zone's policy routing out
	// through one interface (veth.Via), its kill switch included.
	EnsureVia(v veth.Via) (changed bool, err error)
	InspectVia(v veth.Via) ([]string, error)
	DeleteVia(v veth.Via) error
	// Listening reports whether a program of the host's listens on port.
	Listening(proto string, addr netip.Addr, port uint16) (bool, error)

	// DefaultRouteLink names the links of the host's default routes.
	DefaultRouteLink() (v4, v6 string, err error)
	// LinkAddrs lists the addresses of the host's link name.
	LinkAddrs(name string) ([]netip.Prefix, error)
	// HostAddrs lists the host's own addresses.
	HostAddrs() ([]netip.Addr, error)
	// HostPrefixes lists the host's routes and address prefixes.
	HostPrefixes() ([]netip.Prefix, error)
	// Sysctl reads a host sysctl ("net.ipv4.ip_forward"); a missing key
	// wraps fs.ErrNotExist.
	Sysctl(key string) (string, error)
	// SetSysctl writes a host sysctl.
	SetSysctl(key, value string) error

	// ProcessesIn lists the processes in namespace id.
	ProcessesIn(id netns.NsID) []Process
	// ForeignDrops finds other programs' nftables chains that drop zone traffic.
	ForeignDrops() ([]nft.Foreign, error)
	// MissingTables says which of keys' iptables-nft tables do not exist.
	MissingTables(keys []firewall.Key) ([]firewall.Key, error)
	// DeleteTableIfEmpty deletes an iptables-nft table holding nothing, or
	// says why it stays.
	DeleteTableIfEmpty(k firewall.Key) (why string, err error)
	// Generation reads the nf_tables generation of zone's namespace, or of
	// the host's for "".
	Generation(zone string) (nft.Gen, error)
	// WatchCommits starts hearing who commits to the host's nf_tables
	// rulesets (nft.Commits).
	WatchCommits() (Commits, error)
	// OwnThread reports whether id is a thread of this process's.
	OwnThread(id int) bool
	// HostComments reads the rule comments of chains of one iptables-nft
	// table, chain -> comments in order: exec's quick look at the host's wall.
	HostComments(f firewall.Family, table string, chains []string) (map[string][]string, error)
}
