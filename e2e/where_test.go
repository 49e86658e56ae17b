package e2e

// Running programs where a test wants them: on the simulated host, in a zone
// through nszone exec, or in a zone's namespace; among them this test binary
// as a sender (package sender).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/netns"
)

func init() {
	if os.Getenv(sender.Env) == "1" {
		os.Exit(sender.Main(os.Args[1:], os.Stdout))
	}
}

var (
	senderOnce sync.Once
	senderExe  string // the test binary, as a sender: privateTmp's copy first
)

func senderPath(t testing.TB) string {
	t.Helper()
	senderOnce.Do(func() {
		if p, err := os.Executable(); err == nil && senderExe == "" {
			senderExe = p
		}
	})
	if senderExe == "" {
		t.Fatal("cannot find the test binary to run as a sender")
	}
	return senderExe
}

// atHost is where the simulated host is: this process's network namespace.
// A where is atHost, a zone name (through nszone exec, as a user would start
// a program) or "netns:ZONE" (through ip netns exec: a program already
// running in the zone, which works in a degraded zone too).
const atHost = ""

func argvAt(where string, argv ...string) []string {
	switch {
	case where == atHost:
		return argv
	case strings.HasPrefix(where, "netns:"):
		return append([]string{"ip", "netns", "exec", strings.TrimPrefix(where, "netns:")}, argv...)
	default:
		return append([]string{nszoneBin, "exec", where, "--"}, argv...)
	}
}

// runAt runs argv at where, killing it (by its PID) after timeout.
func runAt(t testing.TB, where string, timeout time.Duration, env []string, argv ...string) result {
	t.Helper()
	full := argvAt(where, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, full[0], full[1:]...)
	c.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	began := time.Now()
	err := c.Run()
	if d := time.Since(began); d > 3*time.Second {
		t.Logf("slow (%v): %q", d.Round(time.Millisecond), full)
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running %q: %v", full, err)
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	if ctx.Err() != nil {
		t.Errorf("%q did not finish in %v (killed): %s%s", full, timeout, o.String(), e.String())
	}
	return result{o.String(), e.String(), code}
}

// send runs the sender at where: n attempts at each target, every payload
// carrying token. It returns what the sender saw per target.
func send(t testing.TB, where, token string, n int, targets ...string) map[string]sender.Stat {
	t.Helper()
	args := append([]string{senderPath(t), "send", "-n", strconv.Itoa(n), "-token", token, "-timeout", "800ms", "-gap", "5ms", "-tcpn", "1"}, targets...)
	r := runAt(t, where, 60*time.Second, []string{sender.Env + "=1"}, args...)
	res := sender.Results(r.out)
	if r.code != 0 || len(res) != len(targets) {
		t.Fatalf("sender at %q did not run: exit %d\n%s%s", where, r.code, r.out, r.err)
	}
	return res
}

// stream is a sender started in the background.
type stream struct {
	cmd  *exec.Cmd
	out  syncBuf
	done chan struct{}
}

// syncBuf is a buffer a child process writes while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startStream starts a sender at where that sends to every target in
// turn, without pause but gap, until stopped (at most dur).
func startStream(t testing.TB, where, token string, dur time.Duration, targets ...string) *stream {
	t.Helper()
	argv := argvAt(where, append([]string{senderPath(t), "stream", "-token", token,
		"-dur", dur.String(), "-gap", "2ms", "-timeout", "150ms"}, targets...)...)
	s := &stream{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	s.cmd.Env = append(os.Environ(), sender.Env+"=1")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting the prober at %q: %v", where, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop() })
	return s
}

// stop ends the stream (SIGTERM to its PID, then SIGKILL) and returns
// what it sent.
func (s *stream) stop() map[string]sender.Stat {
	endProcess(s.cmd.Process, s.done, 3*time.Second)
	return sender.Results(s.out.String())
}

// endProcess ends a process the test started, by its PID: SIGTERM, then
// SIGKILL after grace; done closes once it has been waited for.
func endProcess(p *os.Process, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		p.Kill()
		<-done
	}
}

// alive reports whether the stream still runs and is in the namespace
// pinned at /run/netns/zone (not in one that a down left behind).
func (s *stream) alive(zone string) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	var a, b unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", s.cmd.Process.Pid), &a) != nil || unix.Stat(netns.PinDir+"/"+zone, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// waitInFlight gives packets in flight time to arrive before counting.
func waitInFlight() { time.Sleep(300 * time.Millisecond) }
