package launch

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SingleInstance is a program that hands a new launch to an instance of
// itself already running (over a socket in the profile, D-Bus or X11), so
// that a window "started in a zone" opens in the old process, on the old
// process's network.
type SingleInstance struct {
	Name    string   // canonical name: the per-zone profile directory's
	Aliases []string // executable names (argv[0] basename or comm) of the same program
	// Args make a separate instance using profile directory DIR ("{DIR}").
	Args []string
	// Separate are the argument prefixes by which a user already asks for a
	// separate instance; with one of them nothing is refused.
	Separate []string
}

var firefoxArgs = []string{"--no-remote", "--profile", "{DIR}"}
var firefoxSeparate = []string{"--no-remote", "-no-remote", "--new-instance", "-new-instance", "--profile", "-profile", "-P", "--P"}
var chromiumArgs = []string{"--user-data-dir={DIR}"}
var chromiumSeparate = []string{"--user-data-dir"}

// SingleInstances is the table of programs known to be single-instance.
var SingleInstances = []SingleInstance{
	{Name: "firefox", Aliases: []string{"firefox", "firefox-esr", "firefox-bin"}, Args: firefoxArgs, Separate: firefoxSeparate},
	{Name: "librewolf", Aliases: []string{"librewolf"}, Args: firefoxArgs, Separate: firefoxSeparate},
	{Name: "thunderbird", Aliases: []string{"thunderbird", "thunderbird-bin"}, Args: firefoxArgs, Separate: firefoxSeparate},
	{Name: "chromium", Aliases: []string{"chromium", "chromium-browser", "chromium-browse"}, Args: chromiumArgs, Separate: chromiumSeparate},
	{Name: "google-chrome", Aliases: []string{"google-chrome", "google-chrome-stable", "google-chrome-beta", "chrome"}, Args: chromiumArgs, Separate: chromiumSeparate},
	{Name: "brave", Aliases: []string{"brave", "brave-browser", "brave-browser-stable"}, Args: chromiumArgs, Separate: chromiumSeparate},
	{Name: "microsoft-edge", Aliases: []string{"microsoft-edge", "microsoft-edge-stable", "msedge"}, Args: chromiumArgs, Separate: chromiumSeparate},
	{Name: "vivaldi", Aliases: []string{"vivaldi", "vivaldi-stable", "vivaldi-bin"}, Args: chromiumArgs, Separate: chromiumSeparate},
}

// LookupSingleInstance finds program (a path or a name: its basename is
// used) in SingleInstances.
func LookupSingleInstance(program string) *SingleInstance {
	base := filepath.Base(program)
	for i := range SingleInstances {
		for _, a := range SingleInstances[i].Aliases {
			if a == base {
				return &SingleInstances[i]
			}
		}
	}
	return nil
}

// ProfileArgs returns the arguments that make a separate instance with
// profile directory dir.
func (s *SingleInstance) ProfileArgs(dir string) []string {
	out := make([]string, len(s.Args))
	for i, a := range s.Args {
		out[i] = strings.ReplaceAll(a, "{DIR}", dir)
	}
	return out
}

// IsSeparate reports whether args already ask for a separate instance.
func (s *SingleInstance) IsSeparate(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		for _, p := range s.Separate {
			if a == p || strings.HasPrefix(a, p+"=") {
				return true
			}
		}
	}
	return false
}

// ProfileDir is the per-zone profile directory of program for a user whose
// home is home: ~/.local/share/nszone/ZONE/PROGRAM.
func ProfileDir(home, zone, program string) string {
	return filepath.Join(home, ".local", "share", "nszone", zone, program)
}

// Instance is a running process of a single-instance program.
type Instance struct {
	PID  int
	Name string // what matched: argv[0]'s basename or comm
}

// FindOutside lists the processes under procRoot (normally /proc) of
// program s, with real uid uid, whose network namespace is not the one at
// netnsPath. Processes that vanish or cannot be read are skipped.
func FindOutside(procRoot string, s *SingleInstance, uid int, netnsPath string) ([]Instance, error) {
	zone, err := os.Stat(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("looking for %s outside the zone: %w", s.Name, err)
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("looking for %s outside the zone: %w", s.Name, err)
	}
	alias := map[string]bool{}
	for _, a := range s.Aliases {
		alias[a] = true
	}
	var found []Instance
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		name := procName(dir, alias)
		if name == "" {
			continue
		}
		if u, ok := realUID(filepath.Join(dir, "status")); !ok || u != uid {
			continue
		}
		ns, err := os.Stat(filepath.Join(dir, "ns", "net"))
		if err != nil || os.SameFile(ns, zone) {
			continue
		}
		found = append(found, Instance{PID: pid, Name: name})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].PID < found[j].PID })
	return found, nil
}

// procName returns the process's argv[0] basename or comm if one of them
// is in alias, else "".
func procName(dir string, alias map[string]bool) string {
	if cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(cmdline) > 0 {
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if b := filepath.Base(string(argv0)); alias[b] {
			return b
		}
	}
	if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		if c := strings.TrimSpace(string(comm)); alias[c] {
			return c
		}
	}
	return ""
}

// realUID reads the real uid from a /proc/PID/status file.
func realUID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0, false
			}
			u, err := strconv.Atoi(f[0])
			return u, err == nil
		}
	}
	return 0, false
}

// refuseMessage says why the program is not started and how to start it.
func refuseMessage(s *SingleInstance, program, zone string, found []Instance) string {
	pids := make([]string, len(found))
	for i, f := range found {
		pids[i] = strconv.Itoa(f.PID)
	}
	plural := ""
	if len(found) > 1 {
		plural = "es"
	}
	return fmt.Sprintf("not starting %s: it already runs outside zone %s (process%s %s), and a new %s would open its window in that instance, on the wrong network. "+
		"Close it, or start a separate instance with its own profile: nszone exec --profile %s -- %s (which adds %s)",
		program, zone, plural, strings.Join(pids, ", "), program, zone, program,
		strings.Join(s.ProfileArgs(ProfileDir("~", zone, s.Name)), " "))
}
