package refusals

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/nflog"
)

// syn is a logged TCP SYN from 10.250.0.2:sport to 192.168.50.10:80.
func syn(prefix string, uid int, sport uint16) nflog.Packet {
	b := make([]byte, 24)
	b[0], b[9] = 0x45, 6
	copy(b[12:16], netip.MustParseAddr("10.250.0.2").AsSlice())
	copy(b[16:20], netip.MustParseAddr("192.168.50.10").AsSlice())
	binary.BigEndian.PutUint16(b[20:22], sport)
	binary.BigEndian.PutUint16(b[22:24], 80)
	return nflog.Packet{Time: time.Now(), Prefix: prefix, Payload: b, UID: uid}
}

// keep keeps nszone's own packets sent by a program's socket, once per
// flow, classified; it says at most sayMax a zone a minute to the journal,
// and then how many more there were.
func TestKeep(t *testing.T) {
	var said []string
	c := &Collector{Ring: &Ring{Dir: t.TempDir(), Max: DefaultMax}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Classifier: func() (func(string, firewall.Dest) string, error) {
			return func(zone string, d firewall.Dest) string { return "lan" }, nil
		},
		Say: func(line string) { said = append(said, line) }}
	c.keep("wan", []nflog.Packet{
		syn("nszone-wan", 1000, 40000),
		syn("nszone-wan", 1000, 40000), // the same flow
		syn("nszone-wan", -1, 40001),   // no socket: the kernel's own
		syn("nszone-lan", 1000, 40002), // another zone's prefix: not our rule
		syn("other", 1000, 40003),      // not nszone's
	})
	es, err := c.Ring.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Sport != 40000 || es[0].Class != "lan" || es[0].UID == nil || *es[0].UID != 1000 {
		t.Fatalf("kept %+v", es)
	}
	var many []nflog.Packet
	for i := range 30 {
		many = append(many, syn("nszone-wan", 0, uint16(41000+i)))
	}
	c.keep("wan", many)
	if len(said) != sayMax {
		t.Fatalf("said %d lines, want %d", len(said), sayMax)
	}
	c.said["wan"].start = time.Now().Add(-sayPer)
	c.keep("wan", []nflog.Packet{syn("nszone-wan", 0, 42000)})
	if want := fmt.Sprintf("zone wan: %d more", 31-sayMax); !strings.Contains(said[sayMax], want) || len(said) != sayMax+2 {
		t.Errorf("after the minute: %q, want a line with %q and the new entry", said[sayMax:], want)
	}
	if es, _ := c.Ring.Read(); len(es) != 32 {
		t.Errorf("the ring holds %d entries, want all 32", len(es))
	}
	// Without a classifier's answer, the class says so.
	c2 := &Collector{Ring: &Ring{Dir: t.TempDir(), Max: DefaultMax}, Log: c.Log}
	c2.keep("wan", []nflog.Packet{syn("nszone-wan", 0, 40000)})
	if es, _ := c2.Ring.Read(); len(es) != 1 || es[0].Class != ClassUnknown {
		t.Errorf("unclassified: %+v", es)
	}
}
