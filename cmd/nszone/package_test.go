package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// nfpmModule is the nfpm the Makefile runs (its NFPM variable); the test
// fetches it first to tell an unreachable module proxy from a broken build.
const nfpmModule = "github.com/goreleaser/nfpm/v2@v2.45.2"

// TestEcosystemDeb: make deb builds a package holding what make install
// PREFIX=/usr puts in place, with the helper setuid only under ENTER=1, the
// zones file a conffile and maintainer scripts that only daemon-reload. The
// package is listed and extracted with dpkg-deb, never installed on this
// machine; its binary runs and its units verify.
func TestEcosystemDeb(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: dpkg-deb -x keeps the package's owners (root) only for root, and the units are verified as install's are")
	}
	dpkgDeb, err := exec.LookPath("dpkg-deb")
	if err != nil {
		t.Skip("dpkg-deb not installed (Debian package dpkg): the .deb cannot be listed or extracted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dl := exec.CommandContext(ctx, goBin(), "mod", "download", nfpmModule)
	dl.Dir = t.TempDir() // outside this module: go.mod and go.sum stay as they are
	if out, err := dl.CombinedOutput(); err != nil {
		t.Skipf("nfpm (%s) is not in the module cache and the Go module proxy cannot be reached: %v\n%s", nfpmModule, err, out)
	}

	build := t.TempDir()
	makeTarget(t, "deb", "BUILDDIR="+build, "VERSION=v1.2.3-test", "COMMIT=feedc0de")
	deb := filepath.Join(build, "nszone_1.2.3+test-1_"+runtime.GOARCH+".deb")
	dpkg := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(dpkgDeb, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The control fields.
	info := dpkg("-I", deb)
	for _, l := range []string{"Package: nszone", "Version: 1.2.3+test-1", "Architecture: " + runtime.GOARCH,
		"Depends: iptables, iproute2, nftables", "Recommends: xdg-dbus-proxy"} {
		if !strings.Contains(info, "\n "+l+"\n") {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", l, info)
		}
	}
	if got := dpkg("-I", deb, "conffiles"); got != "/etc/nszone/zones.yaml\n" {
		t.Errorf("conffiles: %q, want only /etc/nszone/zones.yaml", got)
	}

	// The files, their modes and owners: the same set make install puts in
	// place, under /usr.
	manPages, _ := filepath.Glob(filepath.Join(repoRoot(t), manDir, "*.1"))
	want := map[string]string{
		"usr/bin/nszone":                                  "-rwxr-xr-x",
		"usr/libexec/nszone/nszone-zoneinit":              "-rwxr-xr-x",
		"usr/libexec/nszone/nszone-enter":                 "-rwxr-xr-x", // not setuid unless asked
		"usr/lib/systemd/system/nszone.service":           "-rw-r--r--",
		"usr/lib/systemd/system/nszone@.service":          "-rw-r--r--",
		"usr/share/bash-completion/completions/nszone":    "-rw-r--r--",
		"usr/share/zsh/site-functions/_nszone":            "-rw-r--r--",
		"usr/share/fish/vendor_completions.d/nszone.fish": "-rw-r--r--",
		"usr/share/doc/nszone/zones.example.yaml":         "-rw-r--r--",
		"etc/nszone/zones.yaml":                           "-rw-r--r--",
		"etc/NetworkManager/dispatcher.d/90-nszone":       "-rwxr-xr-x",
	}
	for _, p := range manPages {
		want["usr/share/man/man1/"+filepath.Base(p)] = "-rw-r--r--"
	}
	checkContents := func(listing string, want map[string]string) {
		t.Helper()
		seen := 0
		for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
			f := strings.Fields(l)
			if len(f) < 6 || strings.HasPrefix(f[0], "d") {
				continue
			}
			name := strings.TrimPrefix(f[5], "./")
			mode, ok := want[name]
			switch {
			case !ok:
				t.Errorf("the package holds %s, which is not expected", name)
			case f[0] != mode || f[1] != "root/root":
				t.Errorf("%s: %s %s, want %s root/root", name, f[0], f[1], mode)
			}
			seen++
		}
		if seen != len(want) {
			t.Errorf("the package holds %d files, want %d:\n%s", seen, len(want), listing)
		}
	}
	checkContents(dpkg("-c", deb), want)

	// The maintainer scripts reload systemd when it runs, and nothing more:
	// no zone is brought up unasked. Run against a systemctl that only
	// records what it is asked.
	ctl := t.TempDir()
	dpkg("-e", deb, filepath.Join(ctl, "DEBIAN"))
	fake, log := filepath.Join(ctl, "bin"), filepath.Join(ctl, "systemctl.log")
	os.MkdirAll(fake, 0o755)
	os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\necho \"$@\" >> "+log+"\n"), 0o755)
	for _, s := range []struct{ script, arg string }{{"postinst", "configure"}, {"postrm", "remove"}, {"postrm", "purge"}} {
		script := filepath.Join(ctl, "DEBIAN", s.script)
		b, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		var code []string // the script without its comments
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); !strings.HasPrefix(l, "#") {
				code = append(code, l)
			}
		}
		for _, bad := range []string{"enable", "start", "restart", "--now"} {
			if strings.Contains(strings.Join(code, "\n"), "systemctl "+bad) {
				t.Errorf("%s runs systemctl %s", s.script, bad)
			}
		}
		if !bytes.Contains(b, []byte("[ -d /run/systemd/system ]")) {
			t.Fatalf("%s does not ask whether systemd runs:\n%s", s.script, b)
		}
		// Both ways, whether or not systemd runs here: the script's
		// /run/systemd/system pointed at a directory that is or is not there.
		for _, running := range []bool{true, false} {
			os.Remove(log)
			runDir := filepath.Join(ctl, "run-systemd-system")
			if running {
				os.MkdirAll(runDir, 0o755)
			} else {
				os.RemoveAll(runDir)
			}
			c := exec.Command("/bin/sh", "-c", strings.ReplaceAll(string(b), "/run/systemd/system", runDir), s.script, s.arg)
			c.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"))
			if out, err := c.CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", s.script, s.arg, err, out)
			}
			got, _ := os.ReadFile(log)
			if want := map[bool]string{true: "daemon-reload\n", false: ""}[running]; string(got) != want {
				t.Errorf("%s %s, systemd running %v: ran systemctl %q, want %q", s.script, s.arg, running, got, want)
			}
		}
	}

	// Extracted (never installed: this machine's dpkg database and root stay
	// as they are), the binary knows its version and the units verify.
	root := t.TempDir()
	dpkg("-x", deb, root)
	out, err := exec.Command(filepath.Join(root, "usr/bin/nszone"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "nszone v1.2.3-test (commit feedc0de, ") {
		t.Errorf("the packaged nszone version: %v %q", err, out)
	}
	example, _ := os.ReadFile(filepath.Join(repoRoot(t), "dist/zones.example.yaml"))
	if b, _ := os.ReadFile(filepath.Join(root, "etc/nszone/zones.yaml")); !bytes.Equal(b, example) {
		t.Error("the packaged etc/nszone/zones.yaml is not dist/zones.example.yaml")
	}
	t.Run("units verify", func(t *testing.T) {
		// verifyUnits reads make install's default layout (/usr/local);
		// the packaged units name /usr/bin/nszone, and are shown to it there.
		local := t.TempDir()
		os.MkdirAll(filepath.Join(local, "usr/local/bin"), 0o755)
		os.MkdirAll(filepath.Join(local, "usr/local/lib/systemd/system"), 0o755)
		os.Symlink(filepath.Join(root, "usr/bin/nszone"), filepath.Join(local, "usr/local/bin/nszone"))
		for u, line := range map[string]string{"nszone.service": "\nExecStart=/usr/bin/nszone watch\n", "nszone@.service": "\nExecStart=/usr/bin/nszone up %i\n"} {
			b, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system", u))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(line)) || bytes.Contains(b, []byte("@BINDIR@")) || bytes.Contains(b, []byte("/usr/local")) {
				t.Errorf("the packaged %s does not run /usr/bin/nszone:\n%s", u, b)
			}
			b = bytes.ReplaceAll(b, []byte("/usr/bin/nszone"), []byte("/usr/local/bin/nszone"))
			os.WriteFile(filepath.Join(local, "usr/local/lib/systemd/system", u), b, 0o644)
		}
		verifyUnits(t, local)
	})

	// ENTER=1: the helper is setuid root, and nothing else changes.
	enter := t.TempDir()
	makeTarget(t, "deb", "BUILDDIR="+enter, "VERSION=v1.2.3-test", "COMMIT=feedc0de", "ENTER=1")
	want["usr/libexec/nszone/nszone-enter"] = "-rwsr-xr-x"
	checkContents(dpkg("-c", filepath.Join(enter, filepath.Base(deb))), want)
}
