// Package sdnotify tells systemd about the service's state, as sd_notify(3)
// does, so that a Type=notify unit of nszone is "started" only once its zones
// are converged and can report its status and reloads. It is our own few
// lines rather than github.com/coreos/go-systemd: one datagram is all it takes.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Common states; several may be sent at once, one per line.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// Notify sends state (e.g. "READY=1\nSTATUS=3 zones up") to the socket
// named by $NOTIFY_SOCKET: a path, or an abstract socket written with a
// leading '@'. It returns false, nil when the variable is unset, as when not
// run by systemd or by a unit without notify access.
func Notify(state string) (sent bool, err error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	// systemd also knows vsock: addresses, for VMs; nszone runs on a host.
	if name[0] != '/' && name[0] != '@' {
		return false, fmt.Errorf("notifying systemd: unsupported NOTIFY_SOCKET %q", name)
	}
	// Go's net package turns a leading '@' into the abstract namespace's NUL.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notifying systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("notifying systemd: %w", err)
	}
	return true, nil
}
