package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/launch"
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
					return writeJSON(cmd, st)
				}
				printStatus(cmd, st)
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

func printStatus(cmd *cobra.Command, st *zones.Status) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ZONE\tSTATE\tALLOW\tADDRESSES\tDNS\tPROCESSES")
	for _, z := range st.Zones {
		dns := strings.Join(z.DNS, ",")
		if len(z.DNSOpenings) > 0 {
			dns += " (opening " + strings.Join(z.DNSOpenings, ",") + ")"
		}
		procs := make([]string, 0, len(z.Processes))
		for _, p := range z.Processes {
			procs = append(procs, fmt.Sprintf("%s[%d]", p.Command, p.PID))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", z.Name, z.State, dash(strings.Join(z.Allow, ",")),
			dash(strings.Join(z.Addresses, ",")), dash(dns), dash(strings.Join(procs, ",")))
	}
	w.Flush()
	for _, z := range st.Zones {
		for _, m := range z.Missing {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: missing %s\n", z.Name, m)
		}
	}
	if st.Firewall != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "firewall: %s\n", st.Firewall)
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
		Use:   "plan [-c FILE]",
		Short: "Show what up would change, changing nothing",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd, o, false, func(m *zones.Manager, f *config.File) error {
				r, err := m.Plan(f)
				printReport(cmd, r)
				return err
			})
		},
	}
	addConfigFlag(c, o)
	return c
}

func execCmd(o *options) *cobra.Command {
	var user string
	c := &cobra.Command{
		Use:   "exec [--user USER] ZONE -- PROGRAM [ARG...]",
		Short: "Run a program inside a zone",
		Long: `Run PROGRAM inside ZONE's network namespace, with the zone's /etc/netns files
bound over /etc and /sys showing the zone's interfaces. Under sudo it runs as the
invoking user; --user picks another. Its exit status is the program's.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("exec: usage: nszone exec [--user USER] ZONE -- PROGRAM [ARG...]")
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
			if err := needRoot(cmd); err != nil {
				return err
			}
			m, err := manager(o)
			if err != nil {
				return err
			}
			l, err := m.Lock(false)
			if err != nil {
				return err
			}
			netns, etc, err := m.Ready(zone)
			if err != nil {
				l.Unlock()
				return err
			}
			// The lock descriptor is close-on-exec: the program does not hold it.
			return launch.Exec(launch.Options{NetnsPath: netns, EtcDir: etc, Hide: launch.DefaultHide,
				User: user, Argv: argv, Env: os.Environ(), Logger: o.log})
		},
	}
	c.Flags().StringVar(&user, "user", "", "run as USER (default: the sudo user, else the caller)")
	c.Flags().SetInterspersed(false) // flags after ZONE belong to the program
	return c
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print nszone's version",
		Args:  noArgs,
		Run: func(cmd *cobra.Command, args []string) {
			v, rev := "(devel)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				if bi.Main.Version != "" {
					v = bi.Main.Version
				}
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						rev = " " + s.Value[:12]
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "nszone %s%s\n", v, rev)
		},
	}
}
