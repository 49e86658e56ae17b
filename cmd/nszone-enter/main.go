// Command nszone-enter lets the users and groups a zone names run a program
// in it as themselves, without sudo. It is installed setuid root (make
// install ENTER=1) and started by `nszone exec` for a caller who is not
// root. It does nothing but this: the zone's access is read from nszone's
// records in /run, never from a zones file, the environment is cleaned
// before anything else, every entry and refusal goes to syslog, and the
// program starts with the caller's own ids and no capability. See
// docs/security.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/entry"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/launch"
	"github.com/nszone/nszone/zones"
)

// restarted is argv[0] of the start with a cleaned environment: a second
// unclean start refuses instead of starting again for ever. (A caller who
// sets it only gets that refusal.)
const restarted = "nszone-enter(cleaned)"

const usage = "usage: nszone-enter [--profile] ZONE -- PROGRAM [ARG...]"

// Exit statuses: those of nszone exec.
const (
	exitRefused = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args, os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	// The environment first: nothing privileged may read the caller's. The
	// runtime and package initialisers have read it already, so a start with
	// anything more than the cleaned list is done again without it.
	if len(args) == 0 {
		// execve with an empty argv (the pkexec hole, CVE-2021-4034).
		fmt.Fprintln(stderr, "nszone: nszone-enter started without arguments")
		return exitUsage
	}
	env := os.Environ()
	kept := entry.CleanEnv(env)
	if !entry.IsClean(env) {
		if args[0] == restarted {
			fmt.Fprintf(stderr, "nszone: the environment is still not clean after a restart: refusing\n")
			return exitRefused
		}
		err := unix.Exec("/proc/self/exe", append([]string{restarted}, args[1:]...), kept)
		fmt.Fprintf(stderr, "nszone: starting again with a cleaned environment: %v\n", err)
		return exitRefused
	}
	os.Clearenv()
	os.Setenv("PATH", entry.SafePath)
	// Setuid already made the process undumpable; say so in code too, so the
	// caller cannot ptrace the privileged phase whatever suid_dumpable is.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(stderr, "nszone: %v\n", err)
		return exitRefused
	}
	// The caller's descriptors reach neither a program run as root
	// (iptables-save on legacy hosts) nor, as with sudo, the program.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintf(stderr, "nszone: closing inherited descriptors: %v\n", err)
		return exitRefused
	}

	a, err := parseArgs(args[1:])
	if errors.Is(err, errHelp) {
		fmt.Fprintln(os.Stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nszone: %v\n%s\n", err, usage)
		return exitUsage
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "nszone: nszone-enter is not setuid root: install it with make install ENTER=1, or run nszone exec through sudo")
		return exitRefused
	}
	c, err := entry.Current()
	if err != nil {
		fmt.Fprintf(stderr, "nszone: %v\n", err)
		return exitRefused
	}
	audit, err := entry.OpenAudit()
	if err != nil {
		fmt.Fprintf(stderr, "nszone: refusing to enter zone %q: every entry must be logged, and %v\n", a.zone, err)
		return exitRefused
	}
	m, e, err := prepare(a.zone, c)
	if err != nil {
		audit.Refused(c, a.zone, err)
		fmt.Fprintf(stderr, "nszone: %v\n", err)
		return exitRefused
	}
	err = launch.Exec(launch.Options{
		NetnsPath: e.Netns, EtcDir: e.Etc, Hide: launch.DefaultHide, Self: true,
		Argv: a.argv, Env: kept, Profile: a.profile, NoNewPrivs: e.Access.NoNewPrivs,
		Logger: slog.New(slog.DiscardHandler),
		// A caller can stop this process between the checks and the drop:
		// what lets them in is checked again at the last privileged moment.
		Recheck: func() error { return recheck(m, a.zone, c, e) },
		Audit: func(path string, argv []string) error {
			if err := audit.Entered(c, a.zone, path, len(argv)-1); err != nil {
				return fmt.Errorf("refusing to enter zone %s: logging the entry: %w", a.zone, err)
			}
			return nil
		},
	})
	audit.Failed(c, a.zone, err)
	fmt.Fprintf(stderr, "nszone: %v\n", err)
	var ee *launch.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return exitRefused
}

// prepare lets c into zone or says why not: the zone's access, read from a
// record only root can write, names c; and the zone is wholly up, with
// files only root can write.
func prepare(zone string, c entry.Caller) (*zones.Manager, *zones.Entry, error) {
	mode := zones.RecordedFirewall()
	if mode == "" {
		return nil, nil, fmt.Errorf("%w in zone %q: no zone is up (run nszone up)", zones.ErrNotUp, zone)
	}
	if err := entry.RootOwned(zones.HostRecord); err != nil {
		return nil, nil, fmt.Errorf("refusing to enter zone %q: nszone's host record must be root's alone: %w", zone, err)
	}
	m := zones.NewManager(slog.New(slog.DiscardHandler), &firewall.IPTables{Mode: mode})
	if _, err := permitted(m, zone, c); err != nil {
		return nil, nil, err
	}
	e, err := m.Ready(zone)
	if err != nil {
		return nil, nil, err
	}
	// Each entry of /etc/netns/ZONE is bound over /etc for the program, and
	// setuid programs run there too.
	files, err := os.ReadDir(e.Etc)
	if err != nil {
		return nil, nil, fmt.Errorf("refusing to enter zone %s: %w", zone, err)
	}
	for _, f := range append([]os.DirEntry{nil}, files...) {
		path := e.Etc
		if f != nil {
			path += "/" + f.Name()
		}
		if err := entry.RootOwned(path); err != nil {
			return nil, nil, fmt.Errorf("refusing to enter zone %s: its files must be root's alone: %w", zone, err)
		}
	}
	return m, e, nil
}

// permitted reads who may enter zone from its record, which must be root's
// alone, and lets c in or says why not.
func permitted(m *zones.Manager, zone string, c entry.Caller) (config.Access, error) {
	access, record, err := m.Access(zone)
	if err != nil {
		return access, err
	}
	if err := entry.RootOwned(record); err != nil {
		return access, fmt.Errorf("refusing to enter zone %s: its record must be root's alone: %w", zone, err)
	}
	return access, entry.Permit(zone, access, c, entry.GroupID)
}

// recheck runs in the zone right before the drop: c may still enter, on the
// same terms, and the namespace entered is still the zone's pin.
func recheck(m *zones.Manager, zone string, c entry.Caller, e *zones.Entry) error {
	access, err := permitted(m, zone, c)
	if err != nil {
		return err
	}
	if !access.Equal(e.Access) {
		return fmt.Errorf("zone %s changed while you were entering it: try again", zone)
	}
	var pin, self unix.Stat_t
	if err := unix.Stat(e.Netns, &pin); err != nil {
		return fmt.Errorf("zone %s: %w", zone, err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		return fmt.Errorf("zone %s: %w", zone, err)
	}
	if pin.Dev != self.Dev || pin.Ino != self.Ino {
		return fmt.Errorf("zone %s was replaced while you were entering it: try again", zone)
	}
	return nil
}

type arguments struct {
	profile bool
	zone    string
	argv    []string
}

var errHelp = errors.New("help")

// parseArgs reads [--profile] ZONE [--] PROGRAM [ARG...]. Options that would
// widen what a caller decides are refused by name.
func parseArgs(args []string) (arguments, error) {
	var a arguments
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		opt, _, _ := strings.Cut(args[0], "=")
		switch {
		case args[0] == "--profile":
			a.profile = true
		case opt == "-h" || opt == "--help":
			return a, errHelp
		case opt == "--user" || opt == "-u":
			return a, errors.New("--user is for root only: run nszone exec --user through sudo")
		case opt == "-c" || opt == "--config":
			return a, errors.New("-c: who may enter a zone is read from the zone as nszone up made it, never from a file given here")
		default:
			return a, fmt.Errorf("unknown option %q", args[0])
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return a, errors.New("no zone given")
	}
	a.zone, args = args[0], args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 || args[0] == "" {
		return a, errors.New("no program given")
	}
	a.argv = args
	return a, nil
}
