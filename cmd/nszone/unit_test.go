package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnitWritesDropIn(t *testing.T) {
	file := writeFile(t, testZones)
	out := t.TempDir()
	stdout, stderr, code := runIn(t, "unit", "-c", file, "--output", out, "web-1", "nginx")
	if code != 0 {
		t.Fatalf("unit: exit %d: %s", code, stderr)
	}
	p := filepath.Join(out, "nginx.service.d", "nszone-web-1.conf")
	if !strings.Contains(stdout, "wrote "+p) {
		t.Errorf("unit did not say what it wrote: %q", stdout)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"[Unit]\nAfter=nszone.service\nRequires=nszone.service\n",
		"[Service]\nNetworkNamespacePath=/run/netns/web-1\n",
		"BindReadOnlyPaths=/etc/netns/web-1/resolv.conf:/etc/resolv.conf\n",
		"BindReadOnlyPaths=/etc/netns/web-1/nsswitch.conf:/etc/nsswitch.conf\n",
		"InaccessiblePaths=-/run/nscd -/run/systemd/resolve -/run/user -/run/dbus -/run/docker.sock -/var/run/docker.sock -/run/containerd -/run/podman\n",
		"PrivateTmp=yes\n", "ProtectProc=invisible\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("drop-in lacks %q:\n%s", want, got)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("drop-in mode %v, want 0644", fi.Mode().Perm())
	}
	// Again: same file, no leftovers.
	if _, stderr, code := runIn(t, "unit", "-c", file, "--output", out, "web-1", "nginx.service"); code != 0 {
		t.Fatalf("second unit: exit %d: %s", code, stderr)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "nginx.service.d"))
	if len(entries) != 1 {
		t.Errorf("drop-in directory holds %d files, want 1", len(entries))
	}
}

// confine: none is ip netns exec's: the namespace and the zone's files only.
func TestUnitConfineNone(t *testing.T) {
	got := unitDropIn("raw", "none")
	if strings.Contains(got, "PrivateTmp") || strings.Contains(got, "/run/user") || !strings.Contains(got, "InaccessiblePaths=-/run/nscd -/run/systemd/resolve\n") {
		t.Errorf("drop-in for confine: none:\n%s", got)
	}
}

func TestUnitRefuses(t *testing.T) {
	file := writeFile(t, testZones)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nope", "nginx"}, `zone "nope" is not in`},
		{[]string{"wan", "../../etc/passwd"}, "not a valid service name"},
		{[]string{"wan", "a/b"}, "not a valid service name"},
		{[]string{"wan", "ssh.socket"}, "not a service"},
		{[]string{"wan", "nszone"}, "not a valid service name"},
		{[]string{"wan", "-x.service"}, ""}, // a flag to cobra: bad usage either way
		{[]string{"wan"}, "usage"},
	} {
		out := t.TempDir()
		_, stderr, code := runIn(t, append([]string{"unit", "-c", file, "--output", out}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("unit %q: exit %d, %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("unit %q wrote %d entries", c.args, len(entries))
		}
	}
	for _, ok := range []string{"getty@tty1", "foo@.service", "my_app-2.service", "a:b"} {
		if _, err := serviceName(ok); err != nil {
			t.Errorf("serviceName(%q): %v", ok, err)
		}
	}
}

// TestUnitVerify has systemd check the drop-in on a dummy service.
func TestUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the drop-in's syntax is not checked by systemd")
	}
	file := writeFile(t, testZones)
	dir := t.TempDir()
	if _, stderr, code := runIn(t, "unit", "-c", file, "--output", dir, "wan", "dummy"); code != 0 {
		t.Fatalf("unit: exit %d: %s", code, stderr)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dummy.service", "[Unit]\nDescription=dummy\n[Service]\nType=oneshot\nExecStart=/bin/true\n")
	write("nszone.service", "[Unit]\nDescription=nszone stand-in\n[Service]\nType=oneshot\nExecStart=/bin/true\n")
	cmd := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "dummy.service"))
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":", "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "dummy.service") || strings.Contains(l, "nszone-wan.conf") {
			t.Errorf("systemd-analyze verify complains: %s", l)
		}
	}
}
