package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/e2e/internal/sink"
)

// dockerd is the docker.io package's daemon, started inside the sandbox
// with every directory it writes on a fresh tmpfs, so it touches nothing of
// this machine's. It makes its bridge (docker0, 172.17.0.1/16: a new host
// address) and puts its chains above nszone's jumps, as on a real host.
type dockerd struct {
	cmd  *exec.Cmd
	out  syncBuf
	done chan struct{}
}

// dockerDirs are where dockerd and the containerd it starts keep state.
var dockerDirs = []string{"/var/lib/docker", "/var/lib/containerd", "/run/docker", "/run/containerd", "/etc/docker"}

func startDockerd(t testing.TB) *dockerd {
	t.Helper()
	needSandbox(t)
	if _, err := exec.LookPath("dockerd"); err != nil {
		t.Skip("dockerd not installed (scripts/deps installs docker.io)")
	}
	for _, d := range dockerDirs {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0711"); err != nil {
			t.Fatalf("mounting a tmpfs over %s: %v", d, err)
		}
		dir := d
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	}
	d := &dockerd{}
	d.start(t)
	t.Cleanup(func() {
		d.stop(t)
		runCmd(t, nil, "ip", "link", "del", "docker0")
	})
	return d
}

func (d *dockerd) start(t testing.TB) {
	t.Helper()
	d.out = syncBuf{}
	d.done = make(chan struct{})
	d.cmd = exec.Command("dockerd", "--host", "unix:///run/docker/docker.sock", "--pidfile", "/run/docker/docker.pid",
		"--data-root", "/var/lib/docker", "--exec-root", "/run/docker", "--iptables=true")
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := runCmd(t, nil, "iptables", "-S", "FORWARD")
		if strings.Contains(r.out, "DOCKER") && strings.Contains(d.out.String(), "API listen on") {
			return
		}
		select {
		case <-d.done:
			t.Skipf("dockerd cannot run in this sandbox:\n%s", d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not come up in 60s:\n%s", d.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends dockerd by its PID and waits for it.
func (d *dockerd) stop(t testing.TB) { endProcess(d.cmd.Process, d.done, 20*time.Second) }

// TestDocker: a real dockerd started after nszone, and restarted, puts its
// chains above nszone's jumps and sets FORWARD's policy to DROP. Without
// watch the zones stay up (the nftables host wall holds, status notes what
// is above) and keep working; with watch nszone's jumps are first again at
// once. Docker's bridge address is one more host address no zone reaches,
// and down leaves forwarding on while Docker needs it.
func TestDocker(t *testing.T) {
	guardHost(t)
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file)
	d := startDockerd(t)
	hostSink := sink.Listen(t, atHost, sink.Options{UDP: []int{portHost}, TCP: []int{portHost}})
	docker0 := []livingAddr{{prefix: mustPrefix(t, "172.17.0.1/16"), dev: "docker0", what: "Docker's bridge"}}

	st := status(t, "-c", file)
	for _, z := range st.Zones {
		if z.State != "up" || !strings.Contains(strings.Join(z.Notes, " "), "is above it") {
			t.Errorf("zone %s with dockerd's chains above nszone's: %s, missing %v, notes %v", z.Name, z.State, z.Missing, z.Notes)
		}
	}
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan under Docker's FORWARD DROP: %s", r.err)
	}
	if leaks := forbiddenReachable(t); len(leaks) > 0 {
		t.Errorf("under Docker: %v", leaks)
	}
	livingProbe(t, "Docker's bridge", hostSink, docker0)

	w := startWatch(t, file)
	firstIsOurs := func() bool {
		r := runCmd(t, nil, "iptables", "-S", "FORWARD")
		lines := strings.Split(r.out, "\n")
		return len(lines) > 1 && strings.Contains(lines[1], "NSZ-FORWARD") && allUp(t, file)
	}
	eventually(t, "watch puts nszone's jump first under a running dockerd", firstIsOurs)
	d.stop(t)
	d.start(t)
	eventually(t, "watch puts nszone's jump first after dockerd restarted", firstIsOurs)
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan after dockerd restarted: %s", r.err)
	}
	livingProbe(t, "Docker's bridge, after its restart", hostSink, docker0)
	w.stop(t, syscall.SIGTERM)
	if out := mustRun(t, "down", "--all"); !strings.Contains(out, "Docker") {
		t.Errorf("down under a running dockerd does not say it leaves forwarding on:\n%s", out)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("down under a running dockerd set ip_forward to %s", b)
	}
}

func mustPrefix(t testing.TB, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
