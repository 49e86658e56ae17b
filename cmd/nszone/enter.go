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

// enterHelpers are where nszone exec looks for nszone-enter, the setuid-root
// helper of `make install ENTER=1`: beside the binary, then in the libexec
// directories of the usual prefixes.
func enterHelpers() []string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		bin := filepath.Dir(exe)
		dirs = append(dirs, filepath.Join(bin, "nszone-enter"), filepath.Join(bin, "..", "libexec", "nszone", "nszone-enter"))
	}
	return append(dirs, "/usr/libexec/nszone/nszone-enter", "/usr/local/libexec/nszone/nszone-enter")
}

// zoneInit is the confined zone's init nszone exec starts: nszone-zoneinit
// beside the binary or in its ../libexec/nszone (the same installation's,
// never another's), else "" (nszone itself again, slower to start). launch
// refuses one it cannot trust.
func zoneInit() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	bin := filepath.Dir(exe)
	for _, path := range []string{filepath.Join(bin, "nszone-zoneinit"), filepath.Join(bin, "..", "libexec", "nszone", "nszone-zoneinit")} {
		if _, err := os.Lstat(path); err == nil {
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
	for _, path := range enterHelpers() {
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
