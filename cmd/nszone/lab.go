package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/lab"
	"github.com/nszone/nszone/sandbox"
)

func labCmd(o *options) *cobra.Command {
	var shell bool
	c := &cobra.Command{
		Use:   "lab [-c FILE] [--shell]",
		Short: "Try nszone in a simulated network, leaving this machine's network untouched",
		Long: `lab builds, inside a private network and mount namespace, a simulated host whose
uplink leads to a router with a LAN (192.168.50.0/24, fd00:50::/64: a web and DNS
server at .10) and an internet (203.0.113.0/24, 2001:db8:113::/64: a web and DNS
server at .10). It brings up the zones (the built-in default unless -c is given),
proves from each zone what it can reach (nszone check), and takes everything
down again.
With --shell it opens a shell in the simulated host instead of probing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(cmd); err != nil {
				return err
			}
			// Outside the sandbox, Reexec runs this same command inside one
			// and exits with its status; inside, it finishes the set-up.
			if err := sandbox.Reexec(); err != nil {
				return err
			}
			return runLab(cmd, o, shell)
		},
	}
	addConfigFlag(c, o)
	c.Flags().BoolVar(&shell, "shell", false, "open a shell in the simulated host with the zones up")
	return c
}

func runLab(cmd *cobra.Command, o *options, shell bool) (err error) {
	out := cmd.OutOrStdout()
	l, err := lab.Start(o.log)
	if err != nil {
		return fmt.Errorf("starting the simulated network: %w", err)
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the simulated network: %w", cerr))
		}
	}()
	fmt.Fprint(out, "Simulated network (in a sandbox; this machine's own network is not touched):\n"+indent(l.Describe()))

	file := o.configPath
	if file == "" {
		dir, err := os.MkdirTemp("", "nszone-lab-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		file = filepath.Join(dir, "zones.yaml")
		if err := os.WriteFile(file, []byte(lab.Zones), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nZones file (the built-in default):\n%s", indent(lab.Zones))
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	nszone := func(args ...string) error {
		fmt.Fprintf(out, "\n$ nszone %s\n", strings.Join(args, " "))
		c := exec.Command(self, args...)
		c.Stdout, c.Stderr = out, cmd.ErrOrStderr()
		return c.Run()
	}
	if err := nszone("up", "-c", file); err != nil {
		return fmt.Errorf("nszone up: %w", err)
	}
	defer func() {
		if derr := nszone("down", "-c", file); derr != nil {
			err = errors.Join(err, fmt.Errorf("nszone down: %w", derr))
		}
	}()
	if err := nszone("status", "-c", file); err != nil {
		return fmt.Errorf("nszone status: %w", err)
	}
	if shell {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		fmt.Fprintf(out, "\nA shell in the simulated host: try `nszone exec wan -- curl http://%s/`. Exit it to tear everything down.\n", l.InetServer4)
		c := exec.Command(sh)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, out, cmd.ErrOrStderr()
		c.Env = append(os.Environ(), "NSZONE_CONFIG="+file, "PS1=[nszone lab] \\w# ")
		_ = c.Run() // the shell's own status is the user's business
		return nil
	}
	// check proves each zone's policy from inside it; a mismatch is its exit status 1.
	checkErr := nszone("check", "-c", file)
	if err := nszone("up", "-c", file); err != nil {
		return fmt.Errorf("second nszone up: %w", err)
	}
	if checkErr != nil {
		return errors.New("some probes did not match the zones' policies")
	}
	return nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
