package zones

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// EnvFault names a fault point at which nszone dies (NSZONE_FAULT=point,
// like kill -9) or fails (NSZONE_FAULT=point:error). Tests use it to prove
// that no moment of up or down leaves a zone open or a mess behind.
const EnvFault = "NSZONE_FAULT"

// FaultPoints lists every fault point, in the order up and down reach them.
var FaultPoints = []string{
	"up-records", "up-firewall", "up-forwarding", "up-netns", "up-inner", "up-pair", "up-files", "up-record", "up-remove",
	"down-link", "down-netns", "down-files", "down-firewall", "down-host",
}

var faultSpec = os.Getenv(EnvFault)

// fault is called at each fault point; it does nothing unless the point is named.
func fault(point string) error {
	name, mode, _ := strings.Cut(faultSpec, ":")
	if name != point {
		return nil
	}
	if mode == "error" {
		return fmt.Errorf("injected fault at %s", point)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
