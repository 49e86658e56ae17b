package zones

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// linuxKernel is the real Kernel: veth's netlink plumbing, /proc, and
// firewall/nft's reads of the host's nftables ruleset.
type linuxKernel struct{ log *slog.Logger }

var _ Kernel = linuxKernel{}

func (k linuxKernel) NamespaceID(name string) (netns.NsID, error) { return netns.PinID(name) }

func (k linuxKernel) Namespaces() ([]string, error) {
	entries, err := os.ReadDir(netns.PinDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %w", netns.PinDir, err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

func (k linuxKernel) NamespaceHasAlias(name, alias string) (bool, error) {
	return veth.NamespaceHasAlias(name, alias)
}

func (k linuxKernel) CreateNamespace(name, alias string, ipv6 bool) (netns.NsID, error) {
	return netns.CreateNamed(name, veth.SetUpNamespace(alias, ipv6), k.log)
}

func (k linuxKernel) DeleteNamespace(name string) error { return netns.DeleteNamed(name, k.log) }

func (k linuxKernel) LinkExists(name string) (bool, error) { return veth.LinkExists(name) }

func (k linuxKernel) LinksWithAlias(prefix string) (map[string]string, error) {
	return veth.LinksWithAliasPrefix(prefix)
}

func (k linuxKernel) HostLinks() (*veth.HostLinks, error) { return veth.ReadHostLinks() }

func (k linuxKernel) EnsurePair(p veth.Pair, host *veth.HostLinks) (bool, error) {
	return veth.EnsurePair(p, host, k.log)
}

func (k linuxKernel) InspectPair(p veth.Pair, host *veth.HostLinks) ([]string, error) {
	return veth.InspectPair(p, host)
}

func (k linuxKernel) CutShort(zone, hostName string) bool { return veth.CutShort(zone, hostName) }

func (k linuxKernel) DeletePair(zone, hostName, alias string) error {
	return veth.DeletePair(zone, hostName, alias, k.log)
}

func (k linuxKernel) EnsureVia(v veth.Via) (bool, error) { return veth.EnsureVia(v, k.log) }

func (k linuxKernel) InspectVia(v veth.Via) ([]string, error) { return veth.InspectVia(v) }

func (k linuxKernel) DeleteVia(v veth.Via) error { return veth.DeleteVia(v, k.log) }

func (k linuxKernel) Listening(proto string, addr netip.Addr, port uint16) (bool, error) {
	return veth.Listening(proto, addr, port)
}

func (k linuxKernel) DefaultRouteLink() (string, string, error) { return veth.DefaultRouteLink() }

func (k linuxKernel) LinkAddrs(name string) ([]netip.Prefix, error) { return veth.LinkAddrs(name) }

func (k linuxKernel) HostAddrs() ([]netip.Addr, error) { return veth.HostAddrs() }

func (k linuxKernel) HostPrefixes() ([]netip.Prefix, error) { return veth.HostPrefixes() }

func (k linuxKernel) Sysctl(key string) (string, error) { return veth.GetSysctl(key) }

func (k linuxKernel) SetSysctl(key, value string) error { return veth.SetSysctl(key, value) }

// ProcessesIn finds every process whose network namespace is id, through
// /proc/*/ns/net: whoever started them, with nszone or not.
func (k linuxKernel) ProcessesIn(id netns.NsID) []Process {
	if id == (netns.NsID{}) {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue
		}
		if uint64(st.Dev) != id.Dev || st.Ino != id.Ino { //nolint:unconvert // Dev is a uint32 on linux/mips
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		out = append(out, Process{PID: pid, Command: strings.TrimSpace(string(comm))})
	}
	return out
}

func (k linuxKernel) ForeignDrops() ([]nft.Foreign, error) { return nft.ForeignDrops() }

func (k linuxKernel) MissingTables(keys []firewall.Key) ([]firewall.Key, error) {
	return nft.MissingTables(keys)
}

func (k linuxKernel) DeleteTableIfEmpty(key firewall.Key) (string, error) {
	return nft.DeleteTableIfEmpty(key)
}

// procPidInitIno is the inode of the initial PID namespace
// (PROC_PID_INIT_INO).
const procPidInitIno = 0xEFFFFFFC

// WatchCommits works only in the host's own PID namespace: the kernel names
// committers by their thread ids there, which a process in another PID
// namespace could not tell from its own.
func (k linuxKernel) WatchCommits() (Commits, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &st); err != nil {
		return nil, fmt.Errorf("reading this process's PID namespace: %w", err)
	}
	if st.Ino != procPidInitIno {
		return nil, errors.New("not in the host's PID namespace: commits' thread ids are not this process's")
	}
	return nft.WatchCommits()
}

func (k linuxKernel) OwnThread(id int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", id))
	return err == nil
}

func (k linuxKernel) Generation(zone string) (nft.Gen, error) {
	if zone == "" {
		return nft.Generation(nil)
	}
	h, err := netns.OpenNamed(zone)
	if err != nil {
		return nft.Gen{}, err
	}
	defer h.Close()
	return nft.Generation(h)
}

func (k linuxKernel) HostComments(f firewall.Family, table string, chains []string) (map[string][]string, error) {
	return nft.HostComments(f, table, chains)
}
