package main

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// The tests here run make: install (into a temporary DESTDIR, never into
// this machine's system directories) and release.

// goBin is this toolchain's go command: go test puts its bin directory first
// in PATH.
func goBin() string { return "go" }

func makeTarget(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	c := exec.Command("make", append([]string{"-C", repoRoot(t), "GO=" + goBin()}, args...)...)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestEcosystemVersion(t *testing.T) {
	out, _, code := runIn(t, "version")
	if code != 0 || !strings.HasPrefix(out, "nszone ") || !strings.Contains(out, runtime.Version()) ||
		!strings.Contains(out, "commit ") || !strings.Contains(out, runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("version: exit %d %q", code, out)
	}
	version, commit = "v9.8.7", "0123456789abcdef"
	defer func() { version, commit = "", "" }()
	if out, _, _ := runIn(t, "version"); out != "nszone v9.8.7 (commit 0123456789abcdef, "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+")\n" {
		t.Errorf("version with -X: %q", out)
	}
}

// TestEcosystemRelease: make release builds a static binary that knows its
// version and commit.
func TestEcosystemRelease(t *testing.T) {
	build := t.TempDir()
	makeTarget(t, "release", "BUILDDIR="+build, "VERSION=v0.0.0-test", "COMMIT=feedc0de")
	bin := filepath.Join(build, "release", "nszone")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the release binary has a program interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the release binary needs %v", libs)
	}
	if file, err := exec.LookPath("file"); err == nil {
		out, _ := exec.Command(file, "-L", bin).Output()
		if !bytes.Contains(out, []byte("statically linked")) && !bytes.Contains(out, []byte("static-pie linked")) {
			t.Errorf("file says: %s", out)
		}
	}
	if ldd, err := exec.LookPath("ldd"); err == nil {
		out, _ := exec.Command(ldd, bin).CombinedOutput()
		if !bytes.Contains(out, []byte("not a dynamic executable")) && !bytes.Contains(out, []byte("statically linked")) {
			t.Errorf("ldd says: %s", out)
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || string(out) != "nszone v0.0.0-test (commit feedc0de, "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+")\n" {
		t.Errorf("release version: %v %q", err, out)
	}
}

// TestEcosystemInstall: make install puts every piece in place under
// DESTDIR, never over an existing zones file; the systemd units verify;
// make uninstall takes it all away again.
func TestEcosystemInstall(t *testing.T) {
	build, dest := t.TempDir(), t.TempDir()
	// Where NetworkManager is, its hook is installed.
	if err := os.MkdirAll(filepath.Join(dest, "etc/NetworkManager"), 0o755); err != nil {
		t.Fatal(err)
	}
	makeTarget(t, "install", "DESTDIR="+dest, "BUILDDIR="+build)

	manPages, _ := filepath.Glob(filepath.Join(repoRoot(t), manDir, "*.1"))
	want := map[string]os.FileMode{
		"usr/local/bin/nszone":                                  0o755,
		"usr/local/libexec/nszone/nszone-zoneinit":              0o755,
		"usr/local/lib/systemd/system/nszone.service":           0o644,
		"usr/local/lib/systemd/system/nszone@.service":          0o644,
		"usr/local/share/bash-completion/completions/nszone":    0o644,
		"usr/local/share/zsh/site-functions/_nszone":            0o644,
		"usr/local/share/fish/vendor_completions.d/nszone.fish": 0o644,
		"usr/local/share/doc/nszone/zones.example.yaml":         0o644,
		"etc/nszone/zones.yaml":                                 0o644,
		"etc/NetworkManager/dispatcher.d/90-nszone":             0o755,
	}
	for _, p := range manPages {
		want["usr/local/share/man/man1/"+filepath.Base(p)] = 0o644
	}
	var got []string
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dest, p)
			got = append(got, rel)
			if mode, ok := want[rel]; !ok {
				t.Errorf("installed %s, which is not expected", rel)
			} else if fi.Mode().Perm() != mode {
				t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), mode)
			}
		}
		return nil
	})
	if len(got) != len(want) {
		t.Errorf("installed %d files, want %d: %v", len(got), len(want), got)
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/nszone.service"))
	for _, l := range []string{"Type=notify", "ExecStart=/usr/local/bin/nszone watch",
		"ExecReload=/bin/kill -HUP $MAINPID", "ExecStopPost=/bin/sh -c 'if [ \"$SERVICE_RESULT\" = success ]; then exec /usr/local/bin/nszone down --all; fi'", "After=network-pre.target",
		"Before=network.target docker.service", "Wants=network-pre.target", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(unit), "\n"+l) {
			t.Errorf("nszone.service lacks %q", l)
		}
	}
	example, _ := os.ReadFile(filepath.Join(repoRoot(t), "dist/zones.example.yaml"))
	zonesFile := filepath.Join(dest, "etc/nszone/zones.yaml")
	if b, _ := os.ReadFile(zonesFile); !bytes.Equal(b, example) {
		t.Error("etc/nszone/zones.yaml is not the example")
	}
	// The example the user gets is a zones file nszone accepts.
	if _, errs, code := runIn(t, "graph", "-c", zonesFile); code != 0 {
		t.Errorf("the installed example does not load: %s", errs)
	}

	t.Run("units verify", func(t *testing.T) { verifyUnits(t, dest) })

	// A second install keeps the user's zones file.
	edited := []byte("version: 1\nzones: {}\n")
	if err := os.WriteFile(zonesFile, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := makeTarget(t, "install", "DESTDIR="+dest, "BUILDDIR="+build); !strings.Contains(out, "kept") {
		t.Errorf("second install did not say it kept the zones file:\n%s", out)
	}
	if b, _ := os.ReadFile(zonesFile); !bytes.Equal(b, edited) {
		t.Errorf("install overwrote the zones file: %q", b)
	}

	// uninstall: everything but the edited zones file goes.
	makeTarget(t, "uninstall", "DESTDIR="+dest, "BUILDDIR="+build)
	var left []string
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 1 || left[0] != zonesFile {
		t.Errorf("after uninstall: %v, want only the edited %s", left, zonesFile)
	}
	// An unedited example goes too.
	os.WriteFile(zonesFile, example, 0o644)
	makeTarget(t, "uninstall", "DESTDIR="+dest, "BUILDDIR="+build)
	if _, err := os.Stat(zonesFile); err == nil {
		t.Error("uninstall kept the unedited example zones file")
	}

	// ENTER=1 adds the setuid helper where nszone exec looks for it, and
	// uninstall takes it away.
	if os.Geteuid() == 0 {
		makeTarget(t, "install", "DESTDIR="+dest, "BUILDDIR="+build, "ENTER=1")
		helper := filepath.Join(dest, "usr/local/libexec/nszone/nszone-enter")
		fi, err := os.Stat(helper)
		if err != nil || fi.Mode() != 0o755|os.ModeSetuid || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("ENTER=1: %s: %v %v, want root's, mode u+s 0755", helper, fi, err)
		} else if f, err := elf.Open(helper); err != nil {
			t.Error(err)
		} else {
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("nszone-enter has a program interpreter: ld.so would run setuid, reading the caller's environment")
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("nszone-enter is dynamically linked (%v): the loader would run setuid", libs)
			}
			f.Close()
		}
		makeTarget(t, "uninstall", "DESTDIR="+dest, "BUILDDIR="+build)
		if _, err := os.Stat(filepath.Dir(helper)); err == nil {
			t.Error("uninstall left the helper's directory")
		}
	}

	// PREFIX=/usr: the units name /usr/bin/nszone and go where systemd's own are.
	dest2 := t.TempDir()
	makeTarget(t, "install", "DESTDIR="+dest2, "BUILDDIR="+build, "PREFIX=/usr")
	unit, err := os.ReadFile(filepath.Join(dest2, "usr/lib/systemd/system/nszone@.service"))
	if err != nil || !strings.Contains(string(unit), "\nExecStart=/usr/bin/nszone up %i\n") {
		t.Errorf("PREFIX=/usr: nszone@.service %v:\n%s", err, unit)
	}
	if _, err := os.Stat(filepath.Join(dest2, "usr/bin/nszone")); err != nil {
		t.Error(err)
	}
}

// verifyUnits runs systemd-analyze verify on the installed units (their
// binary path pointed into DESTDIR, where it exists), the template with an
// instance, and a service that runs in a zone the way the README shows.
func verifyUnits(t *testing.T, dest string) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): the units are not verified")
	}
	dir := t.TempDir()
	bin := filepath.Join(dest, "usr/local/bin/nszone")
	for _, u := range []string{"nszone.service", "nszone@.service"} {
		b, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/nszone"), []byte(bin))
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inZone := filepath.Join(dir, "demo.service")
	os.WriteFile(inZone, []byte("[Unit]\nDescription=a service in zone wan\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"), 0o644)
	os.MkdirAll(inZone+".d", 0o755)
	os.WriteFile(filepath.Join(inZone+".d", "nszone.conf"), []byte(dropIn), 0o644)
	for _, u := range []string{"nszone.service", "nszone@.service", "nszone@wan.service", "demo.service"} {
		c := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, u))
		out, err := c.CombinedOutput()
		// verify exits 0 on some mistakes (an unknown Type=) and only says
		// so: any output is a failure.
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
	// The verifier is not blind: a broken unit fails.
	broken := filepath.Join(dir, "broken.service")
	os.WriteFile(broken, []byte("[Service]\nType=oneshotx\nExecStart=/bin/true\n"), 0o644)
	if out, err := exec.Command(analyze, "verify", "--man=no", broken).CombinedOutput(); err == nil && len(bytes.TrimSpace(out)) == 0 {
		t.Error("systemd-analyze verify accepted a broken unit: the check proves nothing")
	}
}

// dropIn is the README's drop-in for a service that runs in zone wan.
const dropIn = `[Unit]
Requires=nszone.service
After=nszone.service

[Service]
NetworkNamespacePath=/run/netns/wan
BindReadOnlyPaths=/etc/netns/wan/resolv.conf:/etc/resolv.conf
BindReadOnlyPaths=/etc/netns/wan/nsswitch.conf:/etc/nsswitch.conf
`
