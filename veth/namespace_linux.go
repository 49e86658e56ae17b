package veth

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/nszone/nszone/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetUpNamespace returns the set-up of a new zone namespace, for
// netns.CreateNamed to run inside it before pinning it: router
// advertisements ignored, IPv6 off in the whole namespace without ipv6, and
// loopback up carrying alias (if not ""), so that NamespaceHasAlias
// recognises the namespace from birth, before any veth end is in it.
func SetUpNamespace(alias string, ipv6 bool) func() error {
	return func() error {
		// Sysctls come before loopback goes up, so that ::1 never appears
		// in an IPv4-only zone.
		// The defaults are what every link made here inherits, the zone's
		// end of its veth pair among them: it then needs no fix of its own
		// (sysctlFixes), which would take a thread entering the zone.
		sysctls := [][2]string{{"net.ipv6.conf.all.accept_ra", "0"}, {"net.ipv6.conf.default.accept_ra", "0"},
			{"net.ipv6.conf.default.accept_dad", "0"}}
		if !ipv6 {
			sysctls = append(sysctls, [2]string{"net.ipv6.conf.all.disable_ipv6", "1"}, [2]string{"net.ipv6.conf.default.disable_ipv6", "1"})
		}
		for _, kv := range sysctls {
			// A kernel without IPv6 has no such files, and nothing to turn off.
			if err := writeSysctl(kv[0], kv[1]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		defer h.Close()
		lo, err := h.LinkByName("lo")
		if err == nil && alias != "" {
			err = h.LinkSetAlias(lo, alias)
		}
		if err == nil {
			err = h.LinkSetUp(lo)
		}
		if err != nil {
			return fmt.Errorf("setting up loopback: %w", err)
		}
		return nil
	}
}

// HandleIn opens a netlink handle whose socket lives in ns. The socket is
// made inside ns by ns.Do: netlink.NewHandleAt would switch a pool thread
// and give it back even when switching back failed.
func HandleIn(ns *netns.Handle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := ns.Do(func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}
