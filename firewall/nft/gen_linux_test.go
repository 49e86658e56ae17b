package nft

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/nszone/nszone/firewall"
)

// The generation moves with every write to the ruleset, in that namespace
// only, and the cookie tells namespaces apart.
func TestGeneration(t *testing.T) {
	rootTest(t)
	needNft(t)
	h := newNS(t, "gen")
	host1, err := Generation(nil)
	if err != nil {
		t.Fatal(err)
	}
	zone1, err := Generation(h)
	if err != nil {
		t.Fatal(err)
	}
	if zone1.Cookie == host1.Cookie || zone1.Cookie == 0 {
		t.Fatalf("cookies: host %d, zone %d", host1.Cookie, zone1.Cookie)
	}
	if again, _ := Generation(h); again != zone1 {
		t.Fatalf("nothing changed, yet %v -> %v", zone1, again)
	}
	if _, err := Apply(h, firewall.InnerRules(sampleZones()[0], defaultLAN), quiet); err != nil {
		t.Fatal(err)
	}
	zone2, _ := Generation(h)
	host2, _ := Generation(nil)
	if zone2.ID == zone1.ID || zone2.Cookie != zone1.Cookie {
		t.Errorf("a write in the zone: %v -> %v", zone1, zone2)
	}
	if host2 != host1 {
		t.Errorf("a write in the zone moved the host's generation: %v -> %v", host1, host2)
	}
}

// Commits names who made each commit: a child process by its id, this
// process by one of its threads'. The range's first generation counts
// when heard (a reader of it may have seen the rules before it), one
// before it not; the range's end must be heard.
func TestCommitsBy(t *testing.T) {
	rootTest(t)
	needNft(t)
	w, err := WatchCommits()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	nftCmd := func(args ...string) int {
		c := exec.Command("nft", args...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
		return c.Process.Pid
	}
	nftCmd("add", "table", "ip", "cwearly") // heard, before the range
	time.Sleep(10 * time.Millisecond)
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", "cwearly").Run() })
	first := nftCmd("add", "table", "ip", "cwbefore") // the range's first generation
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", "cwbefore").Run() })
	g0, err := Generation(nil)
	if err != nil {
		t.Fatal(err)
	}
	child := nftCmd("add", "table", "ip", "cw1")
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", "cw1").Run() })
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.AddTable(&nftables.Table{Name: "cw2", Family: nftables.TableFamilyIPv4})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", "cw2").Run() })
	g1, err := Generation(nil)
	if err != nil {
		t.Fatal(err)
	}
	if g1.ID != g0.ID+2 {
		t.Fatalf("generation %d -> %d, want two commits", g0.ID, g1.ID)
	}
	by, err := w.By(g0.ID, g1.ID, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(by) != 3 || by[0] != first || by[1] != child {
		t.Fatalf("commits by %v, want [%d, %d, a thread of %d]", by, first, child, os.Getpid())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", by[2])); err != nil {
		t.Errorf("the last commit's thread %d is not one of this process's: %v", by[2], err)
	}
	// Nothing more to hear: a range not reached fails within the timeout.
	if _, err := w.By(g1.ID, g1.ID+1, 100*time.Millisecond); err == nil {
		t.Error("a commit never made was heard")
	}
}
