package sender

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/nszone/nszone/internal/kerneltest"
)

// Traffic only in the sandbox.
func TestMain(m *testing.M) { kerneltest.Main(m, "sender tests") }

func TestParseTarget(t *testing.T) {
	for _, s := range []string{"udp:192.0.2.1:9", "udprr:[2001:db8::1]:53", "tcp:[fe80::1%eth0]:80", "icmp:192.0.2.1"} {
		tg, err := ParseTarget(s)
		if err != nil || tg.String() != s {
			t.Errorf("ParseTarget(%q) = %v, %v", s, tg, err)
		}
	}
	for _, s := range []string{"192.0.2.1:9", "sctp:192.0.2.1:9"} {
		if _, err := ParseTarget(s); err == nil {
			t.Errorf("ParseTarget(%q) accepted", s)
		}
	}
}

// TestSendReport: Main sends to a local listener and reports what Results
// reads back.
func TestSendReport(t *testing.T) {
	kerneltest.Root(t)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target := "udp:" + c.LocalAddr().String()
	var out bytes.Buffer
	if code := Main([]string{"send", "-n", "2", "-token", "TOK", target}, &out); code != 0 {
		t.Fatalf("Main: exit %d\n%s", code, out.String())
	}
	if st := Results(out.String())[target]; st != (Stat{Sent: 2, OK: 2}) {
		t.Errorf("Results = %+v\n%s", st, out.String())
	}
	buf := make([]byte, 100)
	n, _, err := c.ReadFrom(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "TOK "+target+" #") {
		t.Errorf("datagram %q, %v", buf[:n], err)
	}
	if Results(`RESULT tcp:x:1 sent=3 errors=1 ok=2 lasterr="refused \"here\""`)["tcp:x:1"] != (Stat{3, 1, 2, `refused "here"`}) {
		t.Error("Results misread a report line")
	}
}

func TestChecksum(t *testing.T) {
	// An echo request with its checksum in place sums to zero.
	msg := []byte{8, 0, 0, 0, 0x4c, 0x4b, 0, 1, 'x'}
	sum := checksum(msg)
	msg[2], msg[3] = byte(sum>>8), byte(sum)
	if got := checksum(msg); got != 0 {
		t.Errorf("checksum over a checksummed message = %#x, want 0", got)
	}
}
