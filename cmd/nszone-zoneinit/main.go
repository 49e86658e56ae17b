// Command nszone-zoneinit is the first process of a confined zone's PID
// namespace (confine: desktop or strict): it mounts the zone's /proc, becomes
// the user, starts the program, reaps orphans and exits with the program's
// status. Only nszone exec starts it, as root, through the descriptor it
// checked.
//
// It is nszone's init rather than nszone itself because it starts in a
// fraction of the time: it links launch and nothing of nszone's command line,
// zones files, netlink or firewall, and no cgo (no user database: nszone exec
// looked the user up).
package main

import (
	"fmt"
	"os"

	"github.com/nszone/nszone/launch"
)

func main() {
	if !launch.IsInit() {
		fmt.Fprintln(os.Stderr, "nszone-zoneinit: nszone exec starts this program as the first process of a confined zone; it is not run by hand")
		os.Exit(2)
	}
	launch.RunInit()
}
