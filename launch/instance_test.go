package launch

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSingleInstanceTable(t *testing.T) {
	for prog, want := range map[string]string{
		"firefox": "firefox", "/usr/bin/firefox-esr": "firefox", "thunderbird": "thunderbird",
		"chromium": "chromium", "/usr/bin/chromium-browser": "chromium", "google-chrome": "google-chrome",
		"brave-browser": "brave", "brave": "brave", "curl": "", "firefox.sh": "",
	} {
		s := LookupSingleInstance(prog)
		got := ""
		if s != nil {
			got = s.Name
		}
		if got != want {
			t.Errorf("LookupSingleInstance(%q) = %q, want %q", prog, got, want)
		}
	}
	seen := map[string]bool{}
	for _, s := range SingleInstances {
		if len(s.Args) == 0 || len(s.Separate) == 0 || len(s.Aliases) == 0 {
			t.Errorf("%s: incomplete entry %+v", s.Name, s)
		}
		for _, a := range s.Aliases {
			if seen[a] {
				t.Errorf("alias %s in two entries", a)
			}
			seen[a] = true
		}
		// The profile arguments must themselves count as "separate".
		if !s.IsSeparate(s.ProfileArgs("/p")) {
			t.Errorf("%s: its own profile arguments %q do not count as a separate instance", s.Name, s.ProfileArgs("/p"))
		}
	}
	ff := LookupSingleInstance("firefox")
	if got, want := ff.ProfileArgs("/h/p"), []string{"--no-remote", "--profile", "/h/p"}; !slices.Equal(got, want) {
		t.Errorf("firefox ProfileArgs = %q, want %q", got, want)
	}
	ch := LookupSingleInstance("chromium")
	if got, want := ch.ProfileArgs("/h/p"), []string{"--user-data-dir=/h/p"}; !slices.Equal(got, want) {
		t.Errorf("chromium ProfileArgs = %q, want %q", got, want)
	}
	for _, c := range []struct {
		s    *SingleInstance
		args []string
		want bool
	}{
		{ff, nil, false},
		{ff, []string{"https://example.com"}, false},
		{ff, []string{"-P", "work"}, true},
		{ff, []string{"--profile=/x"}, true},
		{ff, []string{"--", "--no-remote"}, false},
		{ch, []string{"--user-data-dir=/tmp/x"}, true},
		{ch, []string{"--user-data-dir", "/tmp/x"}, true},
		{ch, []string{"--incognito"}, false},
	} {
		if got := c.s.IsSeparate(c.args); got != c.want {
			t.Errorf("%s IsSeparate(%q) = %v, want %v", c.s.Name, c.args, got, c.want)
		}
	}
	if got := ProfileDir("/home/a", "wan", "firefox"); got != "/home/a/.local/share/nszone/wan/firefox" {
		t.Errorf("ProfileDir = %s", got)
	}
}

// fakeProc builds a /proc with processes, each in the "host" or the "zone"
// network namespace (two distinct files standing for the namespaces).
type fakeProc struct {
	t                *testing.T
	root, host, zone string
}

func newFakeProc(t *testing.T) *fakeProc {
	d := t.TempDir()
	p := &fakeProc{t: t, root: filepath.Join(d, "proc"), host: filepath.Join(d, "host-net"), zone: filepath.Join(d, "zone-net")}
	for _, f := range []string{p.host, p.zone} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(p.root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *fakeProc) add(pid, uid int, argv []string, comm string, inZone bool) {
	dir := filepath.Join(p.root, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		p.t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	cmdline := ""
	if len(argv) > 0 {
		cmdline = strings.Join(argv, "\x00") + "\x00"
	}
	write("cmdline", cmdline)
	write("comm", comm+"\n")
	write("status", "Name:\t"+comm+"\nUmask:\t0022\nUid:\t"+strconv.Itoa(uid)+"\t"+strconv.Itoa(uid)+"\t0\t0\nGid:\t0\t0\t0\t0\n")
	ns := p.host
	if inZone {
		ns = p.zone
	}
	if err := os.Link(ns, filepath.Join(dir, "ns", "net")); err != nil {
		p.t.Fatal(err)
	}
}

func TestFindOutside(t *testing.T) {
	p := newFakeProc(t)
	p.add(100, 1000, []string{"/usr/lib/firefox-esr/firefox-esr", "-contentproc"}, "firefox-esr", false) // outside, same user
	p.add(200, 1000, []string{"firefox"}, "firefox", true)                                               // inside the zone
	p.add(300, 1001, []string{"firefox"}, "firefox", false)                                              // another user
	p.add(400, 1000, []string{"sh", "/tmp/x/firefox"}, "firefox", false)                                 // a script: comm
	p.add(500, 1000, nil, "kworker/0:1", false)                                                          // kernel thread
	p.add(600, 1000, []string{"/usr/bin/chromium"}, "chromium", false)                                   // another program
	p.add(700, 1000, []string{"/opt/x/firefox-bin"}, "Web Content", false)                               // argv[0]
	ff := LookupSingleInstance("firefox")
	got, err := FindOutside(p.root, ff, 1000, p.zone)
	if err != nil {
		t.Fatal(err)
	}
	want := []Instance{{100, "firefox-esr"}, {400, "firefox"}, {700, "firefox-bin"}}
	if !slices.Equal(got, want) {
		t.Errorf("FindOutside = %+v, want %+v", got, want)
	}
	if got, _ := FindOutside(p.root, ff, 1001, p.zone); !slices.Equal(got, []Instance{{300, "firefox"}}) {
		t.Errorf("FindOutside for uid 1001 = %+v", got)
	}
	if got, _ := FindOutside(p.root, LookupSingleInstance("brave"), 1000, p.zone); len(got) != 0 {
		t.Errorf("FindOutside(brave) = %+v, want none", got)
	}
	if _, err := FindOutside(p.root, ff, 1000, filepath.Join(p.root, "missing")); err == nil {
		t.Error("FindOutside with a missing zone namespace did not fail")
	}

	msg := refuseMessage(ff, "firefox", "wan", want)
	for _, s := range []string{"100, 400, 700", "outside zone wan", "nszone exec --profile wan -- firefox", "--no-remote --profile ~/.local/share/nszone/wan/firefox"} {
		if !strings.Contains(msg, s) {
			t.Errorf("refusal %q does not say %q", msg, s)
		}
	}
}
