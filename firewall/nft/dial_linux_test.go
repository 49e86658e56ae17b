package nft

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// dialIn with no descriptor left for the socket is an error, not the panic
// of mdlayher/netlink on the nil connection mdlayher/socket hands it.
func TestDialInTooManyFiles(t *testing.T) {
	rootTest(t) // setns
	ns, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ns)
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	// One free descriptor: the library takes it to save the thread's
	// namespace, and the socket finds none.
	free, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(free)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(free) + 1, Max: orig.Max}); err != nil {
		t.Fatal(err)
	}
	c, err := dialIn(ns)
	unix.Setrlimit(unix.RLIMIT_NOFILE, &orig)
	if err == nil {
		c.Close()
		t.Fatal("dialIn with no descriptor left succeeded")
	}
	if !strings.Contains(err.Error(), "opening nftables netlink") {
		t.Errorf("dialIn with no descriptor left: %v", err)
	}
}
