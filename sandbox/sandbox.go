// Package sandbox keeps tests and `nszone lab` away from the real network.
//
// nszone changes interfaces, routes, iptables rules, sysctls and files under
// /run/netns, /etc/netns, /run/nszone and /var/lib/nszone. Reexec restarts the
// program in a new network and mount namespace, where Setup hides those
// directories behind fresh tmpfs mounts, so everything the program does dies
// with the sandbox and the host is never touched.
package sandbox

// EnvMarker is set in the environment of a sandboxed process. Reexec sets it to
// "1" for the child; Setup changes it to "ready" once the sandbox is in place,
// so that the process and everything it starts see Active() == true and a
// second Reexec is a no-op.
const EnvMarker = "NSZONE_SANDBOX"

const (
	markerPending = "1"
	markerReady   = "ready"
)

// stateDirs are where nszone keeps things (see the contract), and
// journald's sockets, where nszone-enter logs each entry: inside the sandbox
// each is a fresh, empty tmpfs, so trials never write to the real journal
// and tests can read what was logged.
var stateDirs = []string{"/run/netns", "/etc/netns", "/run/nszone", "/var/lib/nszone", "/run/systemd/journal"}
