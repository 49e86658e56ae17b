package nft

import (
	"testing"

	"github.com/nszone/nszone/firewall"
)

// The generation moves with every write to the ruleset, in that namespace
// only, and the cookie tells namespaces apart.
func TestGeneration(t *testing.T) {
	rootTest(t)
	needNft(t)
	h := newNS(t, "gen")
	host1, err := Generation(0)
	if err != nil {
		t.Fatal(err)
	}
	zone1, err := Generation(h.Fd())
	if err != nil {
		t.Fatal(err)
	}
	if zone1.Cookie == host1.Cookie || zone1.Cookie == 0 {
		t.Fatalf("cookies: host %d, zone %d", host1.Cookie, zone1.Cookie)
	}
	if again, _ := Generation(h.Fd()); again != zone1 {
		t.Fatalf("nothing changed, yet %v -> %v", zone1, again)
	}
	if _, err := Apply(h, firewall.InnerRules(sampleZones()[0], defaultLAN), quiet); err != nil {
		t.Fatal(err)
	}
	zone2, _ := Generation(h.Fd())
	host2, _ := Generation(0)
	if zone2.ID == zone1.ID || zone2.Cookie != zone1.Cookie {
		t.Errorf("a write in the zone: %v -> %v", zone1, zone2)
	}
	if host2 != host1 {
		t.Errorf("a write in the zone moved the host's generation: %v -> %v", host1, host2)
	}
}
