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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/entry"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/launch"
	"github.com/nszone/nszone/launch/who"
	"github.com/nszone/nszone/netns"
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
	if launch.IsInit() {
		launch.RunInit() // the init of a confined zone, started by this helper as root
	}
	os.Exit(run(os.Args, os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		// execve with an empty argv (the pkexec hole, CVE-2021-4034).
		fmt.Fprintln(stderr, "nszone: nszone-enter started without arguments")
		return exitUsage
	}
	// The environment first: nothing privileged may read the caller's. The
	// runtime and package initialisers have read it already, so a start with
	// anything more than the cleaned list is done again without it.
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
	if err := entry.CloseOnExec(); err != nil {
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
	// The caller's limits hold in the privileged phase: with too few
	// descriptors a check would fail half way and name the wrong cause.
	if err := entry.EnoughFiles(); err != nil {
		fmt.Fprintf(stderr, "nszone: refusing to enter zone %q: %v\n", a.zone, err)
		return exitRefused
	}
	// Whom the program runs as: the caller the kernel names, never the
	// environment.
	id, err := who.Caller()
	if err != nil {
		fmt.Fprintf(stderr, "nszone: %v\n", err)
		return exitRefused
	}
	c := entry.CallerOf(id)
	audit, err := entry.OpenAudit()
	if err != nil {
		fmt.Fprintf(stderr, "nszone: refusing to enter zone %q: every entry must be logged, and %v\n", a.zone, err)
		return exitRefused
	}
	g := &gate{zone: a.zone, caller: c, groups: map[string]int{}}
	e, err := g.prepare()
	if err != nil {
		_ = audit.Refused(c, a.zone, err) // refused all the same when the log fails
		fmt.Fprintf(stderr, "nszone: %v\n", err)
		return exitRefused
	}
	logged := false
	err = launch.Exec(launch.Options{
		NetnsPath: e.Netns, EtcDir: e.Etc, Hide: launch.DefaultHide, As: id,
		Argv: a.argv, Env: kept, Profile: a.profile, NoNewPrivs: e.Access.NoNewPrivs, Confine: e.Access.ConfineOr(),
		Logger: slog.New(slog.DiscardHandler),
		// A caller can stop this process between the checks and the drop:
		// what lets them in is checked again at the last privileged moment.
		Recheck: g.recheck,
		Audit: func(path string, argv []string) error {
			if err := audit.Entered(c, a.zone, path, len(argv)-1); err != nil {
				return fmt.Errorf("refusing to enter zone %s: logging the entry: %w", a.zone, err)
			}
			logged = true
			return nil
		},
	})
	if logged {
		_ = audit.Failed(c, a.zone, err) // the entry was logged; its program did not start
	} else {
		_ = audit.Refused(c, a.zone, err)
	}
	fmt.Fprintf(stderr, "nszone: %v\n", err)
	var ee *launch.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return exitRefused
}

// gate decides whether caller may enter zone, from files only root can
// write, twice: before anything is entered, and in the zone right before
// privileges are dropped.
type gate struct {
	zone   string
	caller entry.Caller
	m      *zones.Manager
	first  *zones.Admission
	// netns is the namespace first names, held open from before Ready to
	// the recheck: no other namespace can take its inode or id meanwhile.
	netns  *entry.Namespace
	groups map[string]int // group name -> gid, looked up before the zone's /etc is bound
}

// prepare lets the caller in or says why not: the zone's record, only root
// can write it, names them; the zone is wholly up; and its files, bound over
// /etc for the program, are root's alone.
func (g *gate) prepare() (*zones.Entry, error) {
	if err := entry.RootOwned(zones.RunDir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in zone %q: no zone is up (run nszone up)", zones.ErrNotUp, g.zone)
	} else if err != nil {
		return nil, fmt.Errorf("refusing to enter zone %q: nszone's records must be root's alone: %w", g.zone, err)
	}
	if err := entry.RootOwned(zones.HostRecord); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in zone %q: no zone is up (run nszone up)", zones.ErrNotUp, g.zone)
	} else if err != nil {
		return nil, fmt.Errorf("refusing to enter zone %q: nszone's host record must be root's alone: %w", g.zone, err)
	}
	mode := zones.RecordedFirewall()
	if mode == "" {
		return nil, fmt.Errorf("refusing to enter zone %q: nszone's host record %s cannot be read or names no iptables variant (run nszone up)", g.zone, zones.HostRecord)
	}
	g.m = zones.NewManager(slog.New(slog.DiscardHandler), &firewall.IPTables{Mode: mode})
	adm, err := g.admit()
	if err != nil {
		return nil, err
	}
	g.first = adm
	// The namespace the record names, held from before Ready, which checks
	// it, until the recheck.
	pin := filepath.Join(netns.PinDir, g.zone)
	if err := entry.RootOwned(pin); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in zone %s: it is degraded, missing namespace pin %s (run nszone up to repair)", zones.ErrNotUp, g.zone, pin)
	} else if err != nil {
		return nil, fmt.Errorf("refusing to enter zone %s: its namespace must be root's: %w", g.zone, err)
	}
	if g.netns, err = entry.OpenNamespace(pin); err != nil {
		return nil, fmt.Errorf("refusing to enter zone %s: %w", g.zone, err)
	}
	if g.netns.Dev != adm.Netns.Dev || g.netns.Ino != adm.Netns.Ino {
		return nil, fmt.Errorf("zone %s changed while you were entering it: try again", g.zone)
	}
	// Ready reads every zone's record (the host's wall is built from them).
	if err := entry.RootOwnedTree(filepath.Dir(adm.Record)); err != nil {
		return nil, fmt.Errorf("refusing to enter zone %s: nszone's records must be root's alone: %w", g.zone, err)
	}
	e, err := g.m.Ready(g.zone)
	if err != nil {
		return nil, err
	}
	if e.Warning != "" {
		fmt.Fprintln(os.Stderr, "nszone-enter: warning: "+e.Warning)
	}
	if err := entry.RootOwnedTree(e.Etc); err != nil {
		return nil, fmt.Errorf("refusing to enter zone %s: its files must be root's alone: %w", g.zone, err)
	}
	return e, nil
}

// admit reads the zone's record, which must be root's alone, and lets the
// caller in or says why not.
func (g *gate) admit() (*zones.Admission, error) {
	adm, err := g.m.Admission(g.zone)
	if err != nil {
		return nil, err
	}
	if err := entry.RootOwned(adm.Record); err != nil {
		return nil, fmt.Errorf("refusing to enter zone %s: its record must be root's alone: %w", g.zone, err)
	}
	return adm, entry.Permit(g.zone, adm.Access, g.caller, g.groupID)
}

// groupID resolves a group name once, so that the check in the zone uses
// the host's /etc/group as the first did, whatever the zone's files bind.
func (g *gate) groupID(name string) (int, bool) {
	if id, ok := g.groups[name]; ok {
		return id, id >= 0
	}
	id, ok := entry.GroupID(name)
	if !ok {
		id = -1
	}
	g.groups[name] = id
	return id, ok
}

// recheck runs in the zone right before the drop: the caller may still
// enter, the zone's record is byte for byte the one first read (so who may
// enter, the namespace and the policy are unchanged), and this thread is
// in the namespace held since then, the one that record names and Ready
// checked.
func (g *gate) recheck() error {
	adm, err := g.admit()
	if err != nil {
		return err
	}
	if adm.Digest != g.first.Digest {
		return fmt.Errorf("zone %s changed while you were entering it: try again", g.zone)
	}
	in, err := g.netns.Holds()
	if err != nil {
		return fmt.Errorf("zone %s: %w", g.zone, err)
	}
	if !in {
		return fmt.Errorf("zone %s was replaced while you were entering it: try again", g.zone)
	}
	// This thread is in it now and keeps it: the program is not to
	// inherit a descriptor of root's.
	g.netns.Close()
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
