// Package launch runs a program inside a zone: the core of `nszone exec`.
//
// Joining a zone takes more than setns(2). Like `ip netns exec`, the program
// needs a private mount namespace in which /etc/netns/ZONE/* covers /etc/* and
// /sys shows the zone's interfaces; the host's resolver sockets (nscd,
// systemd-resolved) must be hidden so DNS cannot leak around resolv.conf; and,
// run through sudo, the program must run as the invoking user with no
// capability left. Exec does all of this on one locked OS thread and then
// execve(2)s: nszone does not stay around as a parent, so signals, the
// terminal and the exit status are the program's own.
package launch

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Exit statuses of a failed Exec, as the contract gives them for `nszone exec`.
const (
	ExitSetup     = 1   // entering the zone, mounting or resolving the user failed
	ExitCannotRun = 126 // the program was found but cannot be executed
	ExitNotFound  = 127 // the program was not found
)

// DefaultHide lists the resolver sockets' directories that a zone must not
// reach: through them nscd, nss-resolve and the 127.0.0.53 stub answer from
// the host's network, bypassing the zone's resolv.conf. The /var/run forms
// cover hosts where /var/run is not a symlink to /run.
var DefaultHide = []string{
	"/run/nscd",
	"/run/systemd/resolve",
	"/var/run/nscd",
	"/var/run/systemd/resolve",
}

// Options says what to run and where. Exec does not check that NetnsPath is
// an nszone zone that is up: the caller has done so.
type Options struct {
	NetnsPath string   // the zone's pin, e.g. /run/netns/wan
	EtcDir    string   // e.g. /etc/netns/wan: each entry is bind-mounted over /etc/ENTRY; "" for none
	Hide      []string // directories covered by an empty read-only tmpfs when they exist (see DefaultHide)
	Argv      []string // program and arguments; Argv[0] is looked up in the PATH of Env
	Env       []string // the program's environment (normally os.Environ())
	Dir       string   // working directory; "": the current one if the user can enter it, else HOME, else /
	Logger    *slog.Logger

	// Profile runs a program of SingleInstances as a separate instance
	// with the per-zone profile ProfileDir(HOME, zone, program), created
	// by the program's user. Without it such a program is refused while
	// the same user runs it outside the zone.
	Profile  bool
	ProcRoot string    // where processes are looked for; "": /proc
	Warn     io.Writer // one line per desktop problem (see DesktopEnv); nil: os.Stderr

	// As is whom the program runs as, looked up before anything is entered
	// (launch/who); nil leaves the identity unchanged.
	As *Identity
	// NoNewPrivs sets PR_SET_NO_NEW_PRIVS for the program: setuid files and
	// file capabilities then grant it nothing.
	NoNewPrivs bool
	// Recheck, when set, is called in the zone, still privileged, right
	// before privileges are dropped; an error refuses. nszone-enter checks
	// there once more that the caller may enter, and that the namespace
	// entered is the zone's.
	Recheck func() error `json:"-"`
	// Audit, when set, is called with the program's absolute path and argv
	// after privileges are dropped, just before execve; an error refuses.
	// In a confined zone it is called before the zone's init starts, with
	// the program as root finds it in the zone's PATH.
	Audit func(path string, argv []string) error `json:"-"`
	// Confine is ConfineDesktop, ConfineStrict or ConfineNone ("" is
	// none): what the program reaches besides the zone's network.
	Confine string
	// Init is the zone's init for a confined program (cmd/nszone-zoneinit, a
	// small binary that starts in a fraction of nszone's time); "": this
	// program again (/proc/self/exe), whose main must then call RunInit
	// when IsInit. It is opened before anything is entered, and refused
	// unless trusted as this program is (see openInit).
	Init string
	// Started, when set, is called once a confined program's init runs:
	// this process then only waits (nszone exec releases its lock there).
	Started func() `json:"-"`
}

// warn says one line to the user.
func (o Options) warn(line string) {
	w := o.Warn
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintln(w, "nszone: warning: "+line)
}

// ExitError is the only error Exec returns: Code is the exit status nszone
// must use, Err says what failed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Identity is whom the program runs as (launch/who looks it up).
type Identity struct {
	UID, GID int
	Groups   []int
	Name     string
	Home     string
	Shell    string // "" when not known from /etc/passwd
}

// buildEnv returns the program's environment. With the identity unchanged
// (id == nil) it is env as given. Otherwise HOME, USER, LOGNAME and SHELL
// describe the target user (SHELL is removed when unknown, so programs ask
// NSS instead of using root's), and the SUDO_* variables are removed: they
// describe a privileged session the program is no longer part of, and
// programs and scripts take SUDO_USER/SUDO_UID to mean "I was run through
// sudo" (and may then try to act for that user). Everything else, the
// desktop session's variables included, is kept.
func buildEnv(env []string, id *Identity) []string {
	out := make([]string, 0, len(env)+4)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if id != nil && (k == "HOME" || k == "USER" || k == "LOGNAME" || k == "SHELL" || strings.HasPrefix(k, "SUDO_")) {
			continue
		}
		out = append(out, kv)
	}
	if id == nil {
		return out
	}
	out = append(out, "HOME="+id.Home, "USER="+id.Name, "LOGNAME="+id.Name)
	if id.Shell != "" {
		out = append(out, "SHELL="+id.Shell)
	}
	return out
}

// Getenv returns the first value of key in env, as getenv(3) would.
func Getenv(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// setenv replaces every value of key in env by val.
func setenv(env []string, key, val string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+val)
}
