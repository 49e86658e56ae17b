package zones

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nszone/nszone/netns"
)

// Process is a program running inside a zone.
type Process struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
}

// processesIn finds every process whose network namespace is id, through
// /proc/*/ns/net: whoever started them, with nszone or not.
func processesIn(id netns.NsID) []Process {
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
		if uint64(st.Dev) != id.Dev || st.Ino != id.Ino {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		out = append(out, Process{PID: pid, Command: strings.TrimSpace(string(comm))})
	}
	return out
}
