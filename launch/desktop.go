package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Desktop says, for DesktopEnv, whom the program runs as and how to look at
// the file system.
type Desktop struct {
	UID  int    // the program's uid
	Home string // its HOME
	// Root is prepended to every path looked at ("" = /): tests use a fake tree.
	Root string
	// Readable reports whether the program's user can read path (already
	// prefixed with Root). nil: access(2), right only after the privilege drop.
	Readable func(path string) bool
}

// DesktopEnv fixes the desktop session's variables in env so that a GUI
// program started in a zone reaches the user's display, sound and session
// bus, and returns what will not work, one line each.
//
// Abstract unix sockets belong to a network namespace: inside a zone the
// X server's @/tmp/.X11-unix/XN and a D-Bus daemon's unix:abstract= address
// do not exist (worse, a program of the zone could listen there). Path
// sockets are files, and the zone's mount namespace shows the host's /tmp
// and /run/user, so the path forms work:
//
//   - DISPLAY=:N: X11 clients fall back to /tmp/.X11-unix/XN; without it the
//     display cannot be reached. A DISPLAY naming a host (localhost:10 of ssh
//     -X) goes through the zone's network: said too.
//   - XAUTHORITY: kept; when unset, ~/.Xauthority if present; it must be
//     readable by the program's user.
//   - XDG_RUNTIME_DIR: kept if it is the user's; when unset (sudo removes it)
//     /run/user/UID if present. PulseAudio and PipeWire find their sockets
//     there; Wayland's socket is $XDG_RUNTIME_DIR/$WAYLAND_DISPLAY.
//   - DBUS_SESSION_BUS_ADDRESS: abstract entries are dropped; when none is
//     left, unix:path=$XDG_RUNTIME_DIR/bus if that socket exists.
//   - PULSE_SERVER: an abstract address is dropped (the default socket in
//     XDG_RUNTIME_DIR is used instead).
func DesktopEnv(env []string, d Desktop) ([]string, []string) {
	if d.Readable == nil {
		d.Readable = func(p string) bool { return unix.Access(p, unix.R_OK) == nil }
	}
	var warn []string
	warnf := func(format string, args ...any) { warn = append(warn, fmt.Sprintf(format, args...)) }
	path := func(p string) string { return filepath.Join("/", d.Root, p) }

	// XDG_RUNTIME_DIR first: the bus, Wayland and sound live there.
	runtimeDir := Getenv(env, "XDG_RUNTIME_DIR")
	if runtimeDir != "" {
		if owner, ok := ownerOf(path(runtimeDir)); !ok || owner != d.UID {
			warnf("XDG_RUNTIME_DIR=%s is not the directory of uid %d: the program will not reach the session's sound, Wayland or bus sockets there", runtimeDir, d.UID)
		}
	} else if dir := fmt.Sprintf("/run/user/%d", d.UID); isDirOwnedBy(path(dir), d.UID) {
		runtimeDir = dir
		env = setenv(env, "XDG_RUNTIME_DIR", dir)
	}

	// X11.
	if display := Getenv(env, "DISPLAY"); display != "" {
		host, num, ok := parseDisplay(display)
		switch {
		case !ok:
			// A form we do not know (a socket path): left alone.
		case host != "" && host != "unix":
			warnf("DISPLAY=%s is reached over TCP: from inside the zone that goes through the zone's network (and %s is the zone's own host there), so X11 programs will likely not reach the display", display, host)
		default:
			sock := fmt.Sprintf("/tmp/.X11-unix/X%s", num)
			if !isSocket(path(sock)) {
				warnf("DISPLAY=%s: no X11 socket %s (the X server listens only on its abstract socket, which does not exist in the zone's network namespace): X11 programs will not reach the display; start the X server with -listen unix", display, sock)
			}
		}
		xauth := Getenv(env, "XAUTHORITY")
		if xauth == "" && d.Home != "" {
			if p := filepath.Join(d.Home, ".Xauthority"); isRegular(path(p)) {
				xauth = p
				env = setenv(env, "XAUTHORITY", p)
			}
		}
		if xauth != "" && !d.Readable(path(xauth)) {
			warnf("XAUTHORITY=%s is not readable by uid %d: the X server may refuse the program (run xhost +si:localuser:USER, or give the user a readable copy of the cookie)", xauth, d.UID)
		}
	}

	// Wayland.
	if wl := Getenv(env, "WAYLAND_DISPLAY"); wl != "" {
		sock := wl
		if !filepath.IsAbs(sock) {
			sock = filepath.Join(runtimeDir, wl)
		}
		if runtimeDir == "" && !filepath.IsAbs(wl) || !isSocket(path(sock)) {
			warnf("WAYLAND_DISPLAY=%s: no Wayland socket %s: Wayland programs will not reach the compositor", wl, sock)
		}
	}

	// The session bus.
	if addr, set := lookupEnv(env, "DBUS_SESSION_BUS_ADDRESS"); set {
		kept, dropped := dropAbstract(addr)
		switch {
		case !dropped:
		case kept != "":
			env = setenv(env, "DBUS_SESSION_BUS_ADDRESS", kept)
		case runtimeDir != "" && isSocket(path(filepath.Join(runtimeDir, "bus"))):
			env = setenv(env, "DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(runtimeDir, "bus"))
		default:
			env = unsetenv(env, "DBUS_SESSION_BUS_ADDRESS")
			warnf("DBUS_SESSION_BUS_ADDRESS=%s is an abstract socket, which does not exist in the zone's network namespace, and there is no path socket (%s): the program will not reach the session bus", addr, filepath.Join(runtimeDir, "bus"))
		}
	} else if runtimeDir != "" && isSocket(path(filepath.Join(runtimeDir, "bus"))) {
		env = setenv(env, "DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(runtimeDir, "bus"))
	}

	// Sound.
	if ps := Getenv(env, "PULSE_SERVER"); ps != "" {
		if kept, dropped := dropAbstractPulse(ps); dropped {
			if kept == "" {
				env = unsetenv(env, "PULSE_SERVER")
				warnf("PULSE_SERVER=%s is an abstract socket, which does not exist in the zone's network namespace: using the default socket in XDG_RUNTIME_DIR instead", ps)
			} else {
				env = setenv(env, "PULSE_SERVER", kept)
			}
		}
	}
	return env, warn
}

// parseDisplay splits an X11 DISPLAY into host and display number:
// ":0.1" is ("", "0"), "unix:1" is ("unix", "1"), "localhost:10.0" is
// ("localhost", "10"). ok is false for other forms (a socket path).
func parseDisplay(s string) (host, num string, ok bool) {
	if strings.HasPrefix(s, "/") {
		return "", "", false
	}
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return "", "", false
	}
	host, num = s[:i], s[i+1:]
	host = strings.TrimSuffix(host, ":") // DECnet "host::0"
	if j := strings.IndexByte(num, '.'); j >= 0 {
		num = num[:j]
	}
	if _, err := strconv.Atoi(num); err != nil {
		return "", "", false
	}
	return host, num, true
}

// dropAbstract removes the unix:abstract= entries of a D-Bus address list
// (entries are separated by ';').
func dropAbstract(addr string) (kept string, dropped bool) {
	var out []string
	for _, a := range strings.Split(addr, ";") {
		if a == "" {
			continue
		}
		if strings.HasPrefix(a, "unix:") && strings.Contains(a, "abstract=") {
			dropped = true
			continue
		}
		out = append(out, a)
	}
	return strings.Join(out, ";"), dropped
}

// dropAbstractPulse removes the abstract entries (unix:@name, or a bare
// @name) from a PULSE_SERVER list (entries separated by spaces).
func dropAbstractPulse(s string) (kept string, dropped bool) {
	var out []string
	for _, a := range strings.Fields(s) {
		if strings.HasPrefix(a, "@") || strings.HasPrefix(a, "unix:@") {
			dropped = true
			continue
		}
		out = append(out, a)
	}
	return strings.Join(out, " "), dropped
}

func ownerOf(p string) (int, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

func isDirOwnedBy(p string, uid int) bool {
	fi, err := os.Stat(p)
	if err != nil || !fi.IsDir() {
		return false
	}
	owner, ok := ownerOf(p)
	return ok && owner == uid
}

func isSocket(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

func isRegular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// lookupEnv is getenv that tells an empty value from an absent one.
func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// unsetenv removes every value of key from env.
func unsetenv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}
