// Command nszone partitions one Linux machine's network into named zones.
// This package only wires flags to the zones package and prints results.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/config/zonesfile"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/launch"
	"github.com/nszone/nszone/zones"
)

// Exit statuses, as the contract gives them.
const (
	exitFailed = 1
	exitUsage  = 2
)

// usageError marks bad usage: exit status 2, nothing changed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

type options struct {
	configPath string
	verbose    bool
	output     string
	log        *slog.Logger
}

func main() {
	if launch.IsInit() {
		launch.RunInit() // the init of a confined zone: nszone exec started it
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) (code int) {
	defer func() {
		// No Go panic reaches a user as a stack dump: say what broke.
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "nszone: internal error: %v (please report it, with nszone -v output)\n", r)
			code = exitFailed
		}
	}()
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "nszone: "+err.Error())
	return exitCode(err)
}

func exitCode(err error) int {
	var ue usageError
	var ce *config.Error
	var uz *zones.UnknownZoneError
	var ee *launch.ExitError
	var xe exitError
	switch {
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &xe):
		return xe.code
	case errors.As(err, &ue), errors.As(err, &ce), errors.As(err, &uz),
		strings.HasPrefix(err.Error(), "unknown command"):
		return exitUsage
	}
	return exitFailed
}

// exitError carries an exit status chosen by a command (check: 1 on a mismatch).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func newRoot() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "nszone",
		Short: "Partition this machine's network into zones with their own firewall policy",
		Long: `nszone puts programs into named network zones: network namespaces joined to the
host by a veth pair, with NAT toward the uplink and a firewall policy that says what
each zone may reach (the internet, the LAN, the host, other zones, or nothing).

The zones file is -c FILE, else $NSZONE_CONFIG, else /etc/nszone/zones.yaml, else a
built-in default: wan (internet), lan (lan) and offline (nothing).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if o.verbose {
				level = slog.LevelDebug
			}
			o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().BoolVarP(&o.verbose, "verbose", "v", false, "log every change (debug)")
	root.AddCommand(upCmd(o), downCmd(o), watchCmd(o), statusCmd(o), planCmd(o), execCmd(o), versionCmd(), labCmd(o), checkCmd(o),
		initCmd(o), graphCmd(o), explainCmd(o), logCmd(o), completionCmd(), unitCmd(o))
	addCompletions(root, o)
	return root
}

// addConfigFlag adds -c to commands that read the zones file.
func addConfigFlag(c *cobra.Command, o *options) {
	c.Flags().StringVarP(&o.configPath, "config", "c", "", "zones file (default $NSZONE_CONFIG, else /etc/nszone/zones.yaml, else built-in)")
}

// loadConfig reads the zones file the contract's way.
func loadConfig(o *options) (*config.File, error) {
	path, builtin, err := zonesfile.Locate(o.configPath)
	if err != nil {
		return nil, err
	}
	if builtin {
		return config.Default(), nil
	}
	return zonesfile.Load(path)
}

// needRoot says in one line how to run a command that needs root.
func needRoot(cmd *cobra.Command) error {
	if os.Geteuid() == 0 {
		return nil
	}
	return fmt.Errorf("%s needs root (it changes network namespaces and firewall rules): run sudo %s", cmd.CommandPath(), cmd.CommandPath())
}

func manager(o *options) (*zones.Manager, error) {
	// While zones are up, the variant the first up chose stays in use.
	if mode := zones.RecordedFirewall(); mode != "" {
		return zones.NewManager(o.log, &firewall.IPTables{Mode: mode}), nil
	}
	fw, err := firewall.Detect()
	if err != nil {
		return nil, err
	}
	return zones.NewManager(o.log, fw), nil
}

func printReport(cmd *cobra.Command, r *zones.Report) {
	if r == nil {
		return
	}
	for _, l := range r.Lines {
		fmt.Fprintln(cmd.OutOrStdout(), l)
	}
}

// withManager checks root, reads the file and takes the lock around fn.
func withManager(cmd *cobra.Command, o *options, exclusive bool, fn func(m *zones.Manager, f *config.File) error) error {
	f, err := loadConfig(o)
	if err != nil {
		return err
	}
	if err := needRoot(cmd); err != nil {
		return err
	}
	m, err := manager(o)
	if err != nil {
		return err
	}
	l, err := m.Lock(exclusive)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return fn(m, f)
}
