package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func receive(t *testing.T, l *net.UnixConn) string {
	t.Helper()
	l.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, c := range []struct{ kind, name string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		// Abstract names belong to the network namespace: unique per test run.
		{"abstract", fmt.Sprintf("@nszone-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())},
	} {
		t.Run(c.kind, func(t *testing.T) {
			l := listen(t, c.name)
			t.Setenv("NOTIFY_SOCKET", c.name)
			const state = Ready + "\nSTATUS=2 zones up"
			sent, err := Notify(state)
			if err != nil || !sent {
				t.Fatalf("Notify: sent=%v err=%v", sent, err)
			}
			if got := receive(t, l); got != state {
				t.Fatalf("received %q, want %q", got, state)
			}
		})
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET: sent=%v err=%v, want false, nil", sent, err)
	}
}

func TestNotifyErrors(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "nobody-listens"),
		"relative/notify",
		"vsock:2:1234",
	} {
		t.Setenv("NOTIFY_SOCKET", name)
		if sent, err := Notify(Ready); sent || err == nil {
			t.Errorf("NOTIFY_SOCKET=%s: sent=%v err=%v, want an error", name, sent, err)
		}
	}
}
