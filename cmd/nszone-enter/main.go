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

	"github.com/nszone/nszone/entry"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/launch"
	"github.com/nszone/nszone/zones"
)

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
	// The environment first: nothing privileged may read the caller's.
	env := os.Environ()
	kept := entry.CleanEnv(env)
	if entry.TunesRuntime(env) {
		err := unix.Exec("/proc/self/exe", args, kept)
		fmt.Fprintf(stderr, "nszone: starting again without the Go runtime's variables: %v\n", err)
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
		fmt.Fprintf(stderr, "nszone: refusing to enter zone %s: every entry must be logged, and %v\n", a.zone, err)
		return exitRefused
	}
	p, err := prepare(a.zone, c)
	if err != nil {
		audit.Refused(c, a.zone, err)
		fmt.Fprintf(stderr, "nszone: %v\n", err)
		return exitRefused
	}
	err = launch.Exec(launch.Options{
		NetnsPath: p.Netns, EtcDir: p.Etc, Hide: launch.DefaultHide, Self: true,
		Argv: a.argv, Env: kept, Profile: a.profile, NoNewPrivs: p.Access.NoNewPrivs,
		Logger: slog.New(slog.DiscardHandler),
		Audit: func(path string, argv []string) error {
			if err := audit.Entered(c, a.zone, path, len(argv)-1); err != nil {
				return fmt.Errorf("refusing to enter zone %s: logging the entry: %w", a.zone, err)
			}
			return nil
		},
	})
	fmt.Fprintf(stderr, "nszone: %v\n", err)
	var ee *launch.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return exitRefused
}

// prepare lets c into zone or says why not: the zone's access, read from a
// record only root can write, names c; and the zone is wholly up.
func prepare(zone string, c entry.Caller) (*zones.Entry, error) {
	mode := zones.RecordedFirewall()
	if mode == "" {
		return nil, fmt.Errorf("%w in zone %s: no zone is up (run nszone up)", zones.ErrNotUp, zone)
	}
	m := zones.NewManager(slog.New(slog.DiscardHandler), &firewall.IPTables{Mode: mode})
	access, record, err := m.Access(zone)
	if err != nil {
		return nil, err
	}
	if err := entry.RootOwned(record); err != nil {
		return nil, fmt.Errorf("refusing to enter zone %s: its record must be root's alone: %w", zone, err)
	}
	if err := entry.Permit(zone, access, c, entry.GroupID); err != nil {
		return nil, err
	}
	return m.Ready(zone)
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
		switch opt {
		case "--profile":
			a.profile = true
		case "-h", "--help":
			return a, errHelp
		case "--user", "-u":
			return a, errors.New("--user is for root only: run nszone exec --user through sudo")
		case "-c", "--config":
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
