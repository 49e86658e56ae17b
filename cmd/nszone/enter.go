package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/entry"
)

// helpers are where nszone looks for its helper programs (nszone-enter, the
// setuid-root helper of `make install ENTER=1`, and nszone-zoneinit): beside
// the binary, then in the libexec directories of the usual prefixes.
func helpers(name string) []string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		bin := filepath.Dir(exe)
		dirs = append(dirs, filepath.Join(bin, name), filepath.Join(bin, "..", "libexec", "nszone", name))
	}
	return append(dirs, "/usr/libexec/nszone/"+name, "/usr/local/libexec/nszone/"+name)
}

// zoneInit is the confined zone's init nszone exec starts: the first
// nszone-zoneinit found, else "" (nszone itself again, which is slower to start).
// launch refuses one that is not root's alone.
func zoneInit() string {
	for _, path := range helpers("nszone-zoneinit") {
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			return path
		}
	}
	return ""
}

// enterWithoutSudo runs exec for a caller who is not root through
// nszone-enter, which decides whether they may enter. nszone itself stays
// unprivileged: it only hands over.
func enterWithoutSudo(cmd *cobra.Command, zone string, argv []string, user string, profile bool) error {
	if user != "" {
		return errors.New("exec --user needs root: run it through sudo")
	}
	for _, path := range helpers("nszone-enter") {
		var st unix.Stat_t
		if unix.Stat(path, &st) != nil || st.Uid != 0 || st.Mode&unix.S_ISUID == 0 {
			continue
		}
		args := []string{"nszone-enter"}
		if profile {
			args = append(args, "--profile")
		}
		args = append(append(args, zone, "--"), argv...)
		// Only what may cross into the zone: the helper would otherwise
		// start itself again to be rid of the rest.
		err := syscall.Exec(path, args, entry.CleanEnv(os.Environ()))
		return fmt.Errorf("starting %s: %w", path, err)
	}
	return fmt.Errorf("%s needs root: run sudo %s, or have nszone-enter installed (make install ENTER=1) and be named in the zone's users: or groups:",
		cmd.CommandPath(), cmd.CommandPath())
}
