package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/config/zonesfile"
	"github.com/nszone/nszone/internal/atomicfile"
	"github.com/nszone/nszone/survey"
)

func initCmd(o *options) *cobra.Command {
	var force bool
	var path string
	c := &cobra.Command{
		Use:   "init [-c FILE] [--force]",
		Short: "Write a zones file for this machine (wan, lan and offline), with what it found",
		Long: `init looks at this machine, changing nothing on it: the uplink (the default
route's interface) and its subnets, the real upstream DNS servers (behind a
127.x stub too) and whether it has IPv6. It writes a commented zones file with
the zones wan (internet), lan (lan) and offline (nothing) that nszone up
accepts, and names what it found in the comments.

The file is -c FILE, else $NSZONE_CONFIG, else /etc/nszone/zones.yaml; "-c -"
prints it instead. An existing file is never replaced without --force.`,
		Example: `  sudo nszone init                 # writes /etc/nszone/zones.yaml
  nszone init -c -                 # shows what it would write
  sudo nszone init --force && sudo nszone plan`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				path = os.Getenv(zonesfile.EnvVar)
			}
			if path == "" {
				path = zonesfile.DefaultPath
			}
			m, err := survey.Read("")
			if err != nil {
				return err
			}
			data := m.ZonesFile()
			// What init writes, up must accept: a failure here is nszone's bug.
			if _, err := zonesfile.Parse(path, data); err != nil {
				return fmt.Errorf("init: the zones file written for this machine does not parse (please report it): %w", err)
			}
			if path == "-" {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			if err := writeNew(path, data, force); err != nil {
				return err
			}
			found := "no uplink (no default route)"
			if m.Uplink != "" {
				found = "uplink " + m.Uplink
			}
			if len(m.DNS) > 0 {
				found += fmt.Sprintf(", %d DNS server(s)", len(m.DNS))
			} else {
				found += ", no DNS server"
			}
			if !m.IPv6 {
				found += ", IPv6 disabled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s): zones wan, lan and offline\nnext: nszone plan%s, then nszone up%s\n",
				path, found, configArg(path), configArg(path))
			return nil
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "where to write the zones file (default $NSZONE_CONFIG, else /etc/nszone/zones.yaml); - prints it")
	c.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return c
}

// configArg is the -c argument a later command needs to read path.
func configArg(path string) string {
	if path == zonesfile.DefaultPath || path == os.Getenv(zonesfile.EnvVar) {
		return ""
	}
	return " -c " + path
}

// writeNew writes data to path, never over an existing file unless force;
// with force the old file is replaced at once (a rename), never truncated.
func writeNew(path string, data []byte, force bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("init: creating %s: %w", dir, err)
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("init: %s exists: left as it is (nszone init --force replaces it)", path)
		}
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("init: writing %s: %w", path, err)
		}
		return nil
	}
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("init: %s is not a regular file (a symlink, a directory, ...): not replaced", path)
	}
	if err := atomicfile.Write(path, data, 0o644, true); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return nil
}
