// Package entry holds the rules of nszone-enter, the setuid-root helper that
// lets the users and groups a zone names run `nszone exec ZONE -- PROGRAM`
// as themselves without sudo: which environment crosses into the zone, who
// may enter, that the files deciding it are root's, and the audit log.
// docs/security.md gives the design and its reasons.
package entry

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/launch"
)

// SafePath is the PATH of the privileged phase (iptables-save on hosts
// without nf_tables); the caller's PATH is used only to find the program,
// after the drop.
const SafePath = "/usr/sbin:/usr/bin:/sbin:/bin"

// keep is what crosses from the caller into the zone: the terminal, the
// locale, the desktop session and the program search path. Anything else
// (LD_*, GCONV_PATH, NSZONE_CONFIG, GODEBUG...) is dropped; a user who wants
// more passes it explicitly: nszone exec wan -- env VAR=value PROGRAM.
var keep = []string{
	"TERM", "COLORTERM", "LANG", "LANGUAGE", "TZ", "PATH", "PWD", "EDITOR", "VISUAL", "PAGER",
	"DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "PULSE_SERVER", "PIPEWIRE_REMOTE",
	"DESKTOP_SESSION", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE", "XDG_SESSION_DESKTOP", "XDG_CURRENT_DESKTOP",
	"XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_CONFIG_DIRS", "XDG_DATA_DIRS",
}

// CleanEnv returns the entries of env that may cross into the zone, each
// variable once (the first, as getenv(3) reads it).
func CleanEnv(env []string) []string {
	out := make([]string, 0, len(keep))
	seen := map[string]bool{}
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || seen[k] || !(slices.Contains(keep, k) || strings.HasPrefix(k, "LC_")) {
			continue
		}
		seen[k] = true
		out = append(out, kv)
	}
	return out
}

// IsClean reports whether env is already CleanEnv(env). nszone-enter
// starts itself again unless it is: the Go runtime (GODEBUG, GOGC...) and
// package initialisers (NLDEBUG of the netlink library) read the
// environment before main, so only a start with the cleaned environment
// keeps the caller's variables out of the privileged phase. nszone exec
// hands over with the cleaned environment, so that start is rare.
// In a setuid process the Go runtime adds GOTRACEBACK=none (or replaces
// the caller's value by it) itself: that entry does not count.
func IsClean(env []string) bool {
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return kv == "GOTRACEBACK=none" })
	return slices.Equal(env, CleanEnv(env))
}

// Caller is who started nszone-enter, from the kernel's real ids.
type Caller struct {
	Name string
	UID  int
	GIDs []int // the real gid and the supplementary groups
}

// CallerOf is the caller as who.Caller found it: the kernel's real uid,
// gid and supplementary groups, and the name the user database gives the
// uid; never SUDO_*, USER or LOGNAME.
func CallerOf(id *launch.Identity) Caller {
	return Caller{Name: id.Name, UID: id.UID, GIDs: append([]int{id.GID}, id.Groups...)}
}

// Permit allows c into a zone whose access is a: c is root (who may enter
// every zone anyway), is named in users:, or is in a group named in
// groups:. groupID resolves a group name; a name it does not know lets
// nobody in. A refusal says no more than that: who else may enter, and
// whether the zone names anyone, is not the caller's to learn.
func Permit(zone string, a config.Access, c Caller, groupID func(name string) (int, bool)) error {
	if c.UID == 0 || slices.Contains(a.Users, c.Name) {
		return nil
	}
	for _, g := range a.Groups {
		if id, ok := groupID(g); ok && slices.Contains(c.GIDs, id) {
			return nil
		}
	}
	return fmt.Errorf("you (%s) may not enter zone %s: neither you nor a group of yours is named in its users: or groups:", c.Name, zone)
}

// GroupID resolves a group name from the group database.
func GroupID(name string) (int, bool) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	id, err := strconv.Atoi(g.Gid)
	return id, err == nil
}
