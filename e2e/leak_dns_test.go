package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLeakDNS: a zone's name service asks only the zone's resolv.conf: its
// nsswitch.conf says hosts: files dns, exec hides the host's resolver
// sockets, and dns: auto finds the real upstream server behind
// systemd-resolved's 127.0.0.53 stub.
func TestLeakDNS(t *testing.T) {
	guardHost(t)
	l := theLab
	hostsLine := regexp.MustCompile(`(?m)^hosts:\s+files\s+dns\s*$`)

	// A systemd-resolved host: its directory with the D-Bus/varlink socket
	// and the upstream resolv.conf, and /etc/resolv.conf naming the stub.
	// Mounted in the sandbox's private mount namespace only.
	if fi, err := os.Stat("/run/systemd"); err != nil || !fi.IsDir() {
		t.Skip("no /run/systemd to mount over (the sandbox may only mount over what exists)")
	}
	if err := unix.Mount("nszone-leak", "/run/systemd", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs over /run/systemd in the sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount("/run/systemd", unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting /run/systemd: %v", err)
		}
	})
	if err := os.MkdirAll("/run/systemd/resolve", 0o755); err != nil {
		t.Fatal(err)
	}
	sock, err := net.Listen("unix", "/run/systemd/resolve/io.systemd.Resolve")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	upstream := fmt.Sprintf("# leak test: what systemd-resolved knows\nnameserver %s\n", l.Nameserver)
	stub := "# leak test: the stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lab.example\n"
	for name, content := range map[string]string{"resolv.conf": upstream, "stub-resolv.conf": stub} {
		if err := os.WriteFile("/run/systemd/resolve/"+name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	target, err := filepath.EvalSymlinks("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/run/systemd/resolve/stub-resolv.conf", target, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("binding the stub resolv.conf over %s in the sandbox: %v", target, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", target, err)
		}
	})

	mustRun(t, "up", "-c", writeZones(t, defaultZones))
	if dns := strings.Join(statusZone(status(t), "wan").DNS, " "); dns != l.Nameserver.String() {
		t.Errorf("with the 127.0.0.53 stub, wan's DNS is %q, want the upstream %s", dns, l.Nameserver)
	}
	for _, z := range []string{"wan", "lan"} {
		b, err := os.ReadFile("/etc/netns/" + z + "/resolv.conf")
		if err != nil || strings.Contains(string(b), "127.") || !strings.Contains(string(b), "nameserver "+l.Nameserver.String()) {
			t.Errorf("/etc/netns/%s/resolv.conf: %v\n%s", z, err, b)
		}
		for _, where := range []string{z, "netns:" + z} {
			r := runAt(t, where, 10*time.Second, nil, "cat", "/etc/nsswitch.conf")
			if !hostsLine.MatchString(r.out) {
				t.Errorf("%s sees an nsswitch.conf without hosts: files dns:\n%s%s", where, r.out, r.err)
			}
		}
		// Positive control: names resolve, through the zone's resolv.conf.
		if r := runAt(t, z, 10*time.Second, nil, "getent", "ahostsv4", l.DNSName); r.code != 0 || !strings.Contains(r.out, l.InetServer4.String()) {
			t.Errorf("zone %s: getent ahostsv4 %s: exit %d %q %s", z, l.DNSName, r.code, r.out, r.err)
		}
	}
	// The host sees the resolver's socket (positive control); exec hides it.
	if r := runAt(t, atHost, 10*time.Second, nil, "ls", "-A", "/run/systemd/resolve"); !strings.Contains(r.out, "io.systemd.Resolve") {
		t.Fatalf("positive control: the host does not see the resolver socket: %s%s", r.out, r.err)
	}
	for _, dir := range []string{"/run/systemd/resolve", "/var/run/systemd/resolve"} {
		r := runAt(t, "wan", 10*time.Second, nil, "sh", "-c", "ls -A "+dir+" 2>/dev/null; test -S "+dir+"/io.systemd.Resolve && echo SOCKET-VISIBLE; exit 0")
		if strings.TrimSpace(r.out) != "" {
			t.Errorf("inside nszone exec, %s shows: %q", dir, r.out)
		}
	}
	if r := runAt(t, "wan", 10*time.Second, nil, "sh", "-c", "grep -c '/run/systemd/resolve' /proc/self/mountinfo || true"); strings.TrimSpace(r.out) == "0" {
		t.Logf("inside exec, /run/systemd/resolve is not a mount point: hidden some other way?")
	}
}
