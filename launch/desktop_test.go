package launch

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeRoot makes a tree standing for / with the given unix sockets,
// directories and files (paths relative to it).
type fakeRoot struct {
	t    *testing.T
	root string
}

func newFakeRoot(t *testing.T) *fakeRoot {
	dir, err := os.MkdirTemp("", "nsz") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &fakeRoot{t, dir}
}

func (f *fakeRoot) dir(p string) {
	if err := os.MkdirAll(filepath.Join(f.root, p), 0o700); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeRoot) file(p string) {
	f.dir(filepath.Dir(p))
	if err := os.WriteFile(filepath.Join(f.root, p), []byte("x"), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeRoot) socket(p string) {
	f.dir(filepath.Dir(p))
	l, err := net.Listen("unix", filepath.Join(f.root, p))
	if err != nil {
		f.t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket file stays
}

func TestDesktopEnv(t *testing.T) {
	uid := os.Getuid()
	run := "/run/user/" + strconv.Itoa(uid)
	type tc struct {
		name     string
		setup    func(f *fakeRoot)
		env      []string
		unread   bool // XAUTHORITY unreadable
		want     []string
		absent   []string
		warnings []string // substrings, one per expected warning, in order
	}
	cases := []tc{{
		name: "sudo stripped the session: runtime dir and bus found",
		setup: func(f *fakeRoot) {
			f.socket("/tmp/.X11-unix/X0")
			f.socket(run + "/bus")
			f.file("/home/u/.Xauthority")
		},
		env: []string{"DISPLAY=:0", "TERM=xterm"},
		want: []string{"DISPLAY=:0", "TERM=xterm", "XDG_RUNTIME_DIR=" + run,
			"DBUS_SESSION_BUS_ADDRESS=unix:path=" + run + "/bus", "XAUTHORITY=/home/u/.Xauthority"},
	}, {
		name: "everything kept",
		setup: func(f *fakeRoot) {
			f.socket("/tmp/.X11-unix/X1")
			f.socket(run + "/wayland-0")
			f.file("/x/auth")
			f.socket(run + "/bus")
		},
		env: []string{"DISPLAY=:1.0", "XAUTHORITY=/x/auth", "WAYLAND_DISPLAY=wayland-0", "XDG_RUNTIME_DIR=" + run,
			"DBUS_SESSION_BUS_ADDRESS=unix:path=/x/bus,guid=1", "PULSE_SERVER=unix:" + run + "/pulse/native"},
		want: []string{"DISPLAY=:1.0", "XAUTHORITY=/x/auth", "WAYLAND_DISPLAY=wayland-0", "XDG_RUNTIME_DIR=" + run,
			"DBUS_SESSION_BUS_ADDRESS=unix:path=/x/bus,guid=1", "PULSE_SERVER=unix:" + run + "/pulse/native"},
	}, {
		name:     "X server without a path socket",
		setup:    func(f *fakeRoot) { f.dir("/tmp/.X11-unix") },
		env:      []string{"DISPLAY=:3"},
		want:     []string{"DISPLAY=:3"},
		warnings: []string{"no X11 socket /tmp/.X11-unix/X3"},
	}, {
		name:     "DISPLAY over TCP",
		env:      []string{"DISPLAY=localhost:10.0"},
		warnings: []string{"reached over TCP"},
	}, {
		name:     "XAUTHORITY unreadable",
		setup:    func(f *fakeRoot) { f.socket("/tmp/.X11-unix/X0"); f.file("/root/.Xauthority") },
		env:      []string{"DISPLAY=unix:0", "XAUTHORITY=/root/.Xauthority"},
		unread:   true,
		warnings: []string{"XAUTHORITY=/root/.Xauthority is not readable"},
	}, {
		name:   "abstract bus rewritten to the path form",
		setup:  func(f *fakeRoot) { f.socket(run + "/bus") },
		env:    []string{"XDG_RUNTIME_DIR=" + run, "DBUS_SESSION_BUS_ADDRESS=unix:abstract=/tmp/dbus-X,guid=2"},
		want:   []string{"DBUS_SESSION_BUS_ADDRESS=unix:path=" + run + "/bus"},
		absent: []string{"DBUS_SESSION_BUS_ADDRESS=unix:abstract=/tmp/dbus-X,guid=2"},
	}, {
		name:  "abstract entry dropped from a list",
		env:   []string{"DBUS_SESSION_BUS_ADDRESS=unix:abstract=/tmp/a;unix:path=/run/b"},
		want:  []string{"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/b"},
		setup: func(f *fakeRoot) {},
	}, {
		name:     "abstract bus and no path form",
		env:      []string{"DBUS_SESSION_BUS_ADDRESS=unix:abstract=/tmp/dbus-Y"},
		absent:   []string{"DBUS_SESSION_BUS_ADDRESS=unix:abstract=/tmp/dbus-Y"},
		warnings: []string{"will not reach the session bus"},
	}, {
		name:     "Wayland socket missing",
		setup:    func(f *fakeRoot) { f.dir(run) },
		env:      []string{"WAYLAND_DISPLAY=wayland-1"},
		want:     []string{"XDG_RUNTIME_DIR=" + run},
		warnings: []string{"no Wayland socket " + run + "/wayland-1"},
	}, {
		name:     "runtime dir of another user",
		setup:    func(f *fakeRoot) {},
		env:      []string{"XDG_RUNTIME_DIR=/run/user/99999"},
		warnings: []string{"is not the directory of uid"},
	}, {
		name:     "abstract PulseAudio server",
		env:      []string{"PULSE_SERVER=unix:@pulse"},
		absent:   []string{"PULSE_SERVER=unix:@pulse"},
		warnings: []string{"PULSE_SERVER=unix:@pulse is an abstract socket"},
	}, {
		name: "no session at all: nothing added, nothing said",
		env:  []string{"PATH=/bin"},
		want: []string{"PATH=/bin"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeRoot(t)
			if c.setup != nil {
				c.setup(f)
			}
			d := Desktop{UID: uid, Home: "/home/u", Root: f.root, Readable: func(p string) bool {
				_, err := os.Stat(p)
				return err == nil && !c.unread
			}}
			got, warn := DesktopEnv(append([]string(nil), c.env...), d)
			for _, w := range c.want {
				k, _, _ := strings.Cut(w, "=")
				if v, ok := lookupEnv(got, k); !ok || k+"="+v != w {
					t.Errorf("want %s, got env %q", w, got)
				}
			}
			for _, a := range c.absent {
				for _, kv := range got {
					if kv == a {
						t.Errorf("%s still in env %q", a, got)
					}
				}
			}
			if len(warn) != len(c.warnings) {
				t.Fatalf("warnings = %q, want %d containing %q", warn, len(c.warnings), c.warnings)
			}
			for i, w := range c.warnings {
				if !strings.Contains(warn[i], w) {
					t.Errorf("warning %q does not say %q", warn[i], w)
				}
			}
		})
	}
}

func TestParseDisplay(t *testing.T) {
	for in, want := range map[string][3]string{
		":0":             {"", "0", "true"},
		":12.1":          {"", "12", "true"},
		"unix:1":         {"unix", "1", "true"},
		"localhost:10.0": {"localhost", "10", "true"},
		"[::1]:2":        {"[::1]", "2", "true"},
		"/tmp/launch/x":  {"", "", "false"},
		"junk":           {"", "", "false"},
		":x":             {"", "", "false"},
	} {
		h, n, ok := parseDisplay(in)
		if got := [3]string{h, n, strconv.FormatBool(ok)}; got != want {
			t.Errorf("parseDisplay(%q) = %q, want %q", in, got, want)
		}
	}
}
