package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/launch"
	"github.com/nszone/nszone/launch/who"
	"github.com/nszone/nszone/zones"
)

func upCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "up [-c FILE] [ZONE...]",
		Short: "Create or converge zones to match the zones file",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd, o, true, func(m *zones.Manager, f *config.File) error {
				r, err := m.Up(f, args)
				printReport(cmd, r)
				return err
			})
		},
	}
	addConfigFlag(c, o)
	return c
}

func downCmd(o *options) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "down [-c FILE] [ZONE...] [--all]",
		Short: "Remove zones (--all: everything nszone owns, no file needed)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return usagef("down: give zone names or --all, not both")
			}
			return withDownConfig(cmd, o, all, func(m *zones.Manager, f *config.File) error {
				r, err := m.Down(f, args, all)
				printReport(cmd, r)
				return err
			})
		},
	}
	addConfigFlag(c, o)
	c.Flags().BoolVar(&all, "all", false, "remove every zone nszone owns, with or without a zones file")
	return c
}

// noArgs is cobra.NoArgs with the contract's exit status for bad usage.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{err}
	}
	return nil
}

// withDownConfig is withManager, except that down --all needs no file: what
// nszone owns is found without it.
func withDownConfig(cmd *cobra.Command, o *options, all bool, fn func(m *zones.Manager, f *config.File) error) error {
	if !all {
		return withManager(cmd, o, true, fn)
	}
	if err := needRoot(cmd); err != nil {
		return err
	}
	m, err := manager(o)
	if err != nil {
		return err
	}
	l, err := m.Lock(true)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return fn(m, &config.File{Path: "(none)"})
}

func statusCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "status [-c FILE] [ZONE...] [-o table|json]",
		Short: "Show zones: state, policy, DNS, addresses and the programs inside",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			return withManager(cmd, o, false, func(m *zones.Manager, f *config.File) error {
				st, err := m.Status(f, args)
				if err != nil {
					return err
				}
				if o.output == "json" {
					err = writeJSON(cmd, st)
				} else {
					printStatus(cmd, st)
				}
				if err != nil {
					return err
				}
				// Scripts and monitoring read the exit status: 1 while any
				// zone is degraded, as systemctl is-active does.
				if n := st.Degraded(); n > 0 {
					return exitError{exitFailed, fmt.Sprintf("status: %d zone(s) degraded", n)}
				}
				return nil
			})
		},
	}
	addConfigFlag(c, o)
	c.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	return c
}

func checkOutput(v string) error {
	if v != "table" && v != "json" {
		return usagef("-o %q: want table or json", v)
	}
	return nil
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// counted is a zone's counters in a few characters: packets let through
// and refused, both families ("1.2k/37").
func counted(c *firewall.Counters) string {
	if c == nil {
		return "-"
	}
	return short(c.IPv4.Allowed.Packets+c.IPv6.Allowed.Packets) + "/" + short(c.IPv4.Refused.Packets+c.IPv6.Refused.Packets)
}

// short writes n with a k, M or G suffix from a thousand on.
func short(n uint64) string {
	units := []string{"", "k", "M", "G"}
	v, i := float64(n), 0
	for i < len(units)-1 && v >= 999.95 { // 999950 is 1.0M, not 1000.0k
		v, i = v/1000, i+1
	}
	if i == 0 {
		return strconv.FormatUint(n, 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[i]
}

func printStatus(cmd *cobra.Command, st *zones.Status) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ZONE\tSTATE\tALLOW\tADDRESSES\tDNS\tSENT/REFUSED\tPROCESSES")
	for _, z := range st.Zones {
		dns := strings.Join(z.DNS, ",")
		if len(z.DNSOpenings) > 0 {
			dns += " (opening " + strings.Join(z.DNSOpenings, ",") + ")"
		}
		procs := make([]string, 0, len(z.Processes))
		for _, p := range z.Processes {
			procs = append(procs, fmt.Sprintf("%s[%d]", p.Command, p.PID))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", z.Name, z.State, dash(strings.Join(z.Allow, ",")),
			dash(strings.Join(z.Addresses, ",")), dash(dns), counted(z.Counters), dash(strings.Join(procs, ",")))
	}
	w.Flush()
	for _, z := range st.Zones {
		if len(z.Users)+len(z.Groups) > 0 {
			a := config.Access{Users: z.Users, Groups: z.Groups, NoNewPrivs: z.NoNewPrivs}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: may enter without sudo: %s\n", z.Name, zones.DescribeAccess(a))
		}
		for _, m := range z.Missing {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: missing %s\n", z.Name, m)
		}
		if len(z.Published) > 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: published %s\n", z.Name, strings.Join(z.Published, ", "))
		}
		if z.Via != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: internet only via %s\n", z.Name, z.Via)
		}
		if z.Confine != "" && z.Confine != "desktop" {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: confine %s\n", z.Name, z.Confine)
		}
		for _, n := range z.Notes {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: note: %s\n", z.Name, n)
		}
	}
	if st.Firewall != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "firewall: %s\n", st.Firewall)
	}
	for _, n := range st.Notes {
		fmt.Fprintln(cmd.OutOrStdout(), n)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func planCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "plan [-c FILE] [-o table|json]",
		Short: "Show what up would change, changing nothing",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			return withManager(cmd, o, false, func(m *zones.Manager, f *config.File) error {
				p, err := m.PlanDetail(f)
				if err != nil {
					return err
				}
				if o.output == "json" {
					return writeJSON(cmd, p)
				}
				printReport(cmd, p.Report())
				return nil
			})
		},
	}
	addConfigFlag(c, o)
	c.Flags().StringVarP(&o.output, "output", "o", "table", "table or json")
	return c
}

func execCmd(o *options) *cobra.Command {
	var user string
	var profile bool
	c := &cobra.Command{
		Use:   "exec [--user USER] [--profile] ZONE -- PROGRAM [ARG...]",
		Short: "Run a program inside a zone",
		Long: `Run PROGRAM inside ZONE's network namespace, with the zone's /etc/netns files
bound over /etc and /sys showing the zone's interfaces. Under sudo it runs as the
invoking user; --user picks another. Its exit status is the program's.

Users and groups named in the zone's users: and groups: run it as themselves
without sudo, where nszone-enter is installed setuid root (make install ENTER=1);
nszone exec hands over to it. See docs/security.md.

The desktop session is kept: DISPLAY (through the X server's path socket
/tmp/.X11-unix/XN), XAUTHORITY (else ~/.Xauthority), WAYLAND_DISPLAY,
XDG_RUNTIME_DIR (else /run/user/UID), the session bus in its path form, the working
directory and the terminal; what cannot work from inside the zone is said in one
warning line each.

Browsers and mail clients (firefox, chromium, google-chrome, brave, thunderbird...)
hand a new launch to an instance already running: if one runs outside the zone as
the same user, exec refuses. --profile starts a separate instance with its own
profile, ~/.local/share/nszone/ZONE/PROGRAM (created by the user).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("exec: usage: nszone exec [--user USER] [--profile] ZONE -- PROGRAM [ARG...]")
			}
			if dash := cmd.ArgsLenAtDash(); dash > 1 {
				return usagef("exec: one zone before --, the program after it")
			}
			zone, argv := args[0], args[1:]
			if argv[0] == "--" { // with interspersed flags off, pflag leaves the dash in
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return usagef("exec: no program given: nszone exec ZONE -- PROGRAM [ARG...]")
			}
			if os.Geteuid() != 0 {
				return enterWithoutSudo(cmd, zone, argv, user, profile)
			}
			// Whom to run as, before anything is entered: an unknown user
			// fails with nothing changed.
			as, err := who.Target(user, os.Environ(), os.Geteuid())
			if err != nil {
				return &launch.ExitError{Code: launch.ExitSetup, Err: err}
			}
			m, err := manager(o)
			if err != nil {
				return err
			}
			l, e, err := readyLocked(m, zone)
			if err != nil {
				return err
			}
			defer l.Unlock() // only reached when the program cannot be started
			// The lock descriptor is close-on-exec: the program does not hold it.
			return launch.Exec(launch.Options{NetnsPath: e.Netns, EtcDir: e.Etc, Hide: launch.DefaultHide,
				As: as, Argv: argv, Env: os.Environ(), Logger: o.log, Profile: profile, NoNewPrivs: e.Access.NoNewPrivs,
				Confine: e.Access.ConfineOr(), Init: zoneInit(), Started: l.Unlock})
		},
	}
	c.Flags().StringVar(&user, "user", "", "run as USER (default: the sudo user, else the caller)")
	c.Flags().BoolVar(&profile, "profile", false, "run a browser or mail client as a separate instance with a per-zone profile (~/.local/share/nszone/ZONE/PROGRAM)")
	c.Flags().SetInterspersed(false) // flags after ZONE belong to the program
	return c
}

// version and commit are set when nszone is built for a release:
// go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD)".
var version, commit string

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print nszone's version, commit and Go version",
		Args:  noArgs,
		Run: func(cmd *cobra.Command, args []string) {
			v, rev := buildVersion()
			fmt.Fprintf(cmd.OutOrStdout(), "nszone %s (commit %s, %s %s/%s)\n", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

// buildVersion is the version and commit given to the linker, else what the
// Go toolchain recorded (a module version, a VCS revision), else "devel" and
// "unknown".
func buildVersion() (v, rev string) {
	v, rev = version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		dirty := ""
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
		if rev != "" && commit == "" {
			rev += dirty
		}
	}
	if v == "" {
		v = "devel"
	}
	if rev == "" {
		rev = "unknown"
	}
	return v, rev
}

// watchWait is how long exec waits for nszone watch to repair a degraded
// zone before it refuses.
const watchWait = 2 * time.Second

// readyLocked checks that zone is ready under the shared lock and returns
// the lock held. When the zone is degraded and nszone watch is running, it
// waits (lock released, so watch can write) up to watchWait for the repair.
func readyLocked(m *zones.Manager, zone string) (*zones.Lock, *zones.Entry, error) {
	deadline := time.Now().Add(watchWait)
	said := false
	for {
		l, err := m.Lock(false)
		if err != nil {
			return nil, nil, err
		}
		e, err := m.Ready(zone)
		if err == nil {
			if e.Warning != "" {
				fmt.Fprintln(os.Stderr, "nszone: warning: "+e.Warning)
			}
			return l, e, nil
		}
		l.Unlock()
		if !errors.Is(err, zones.ErrDegraded) || !m.Watching() || time.Now().After(deadline) {
			return nil, nil, err
		}
		if !said {
			fmt.Fprintf(os.Stderr, "nszone: zone %s is degraded; waiting up to %s for nszone watch to repair it\n", zone, watchWait)
			said = true
		}
		time.Sleep(50 * time.Millisecond)
	}
}
