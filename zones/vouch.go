package zones

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"golang.org/x/sys/unix"
)

// A vouch lets exec skip reading the walls. The last full check that found
// a zone whole records the nf_tables generation of the host's namespace and
// of the zone's, each with the namespace's cookie, and the digest of the
// zone's record. The kernel moves a namespace's generation with every change
// to any of its rules, iptables-nft's included, so while both generations,
// both namespaces and the record are the same, so are the walls: exec then
// asks the kernel two numbers instead of reading every rule. Anything else
// (another namespace pinned as the zone, a rule changed by anyone, an up
// since) sends exec back to the full check. Hosts on iptables-legacy, whose
// rules have no generation, always take the full check.
type vouch struct {
	Record string  `json:"record"` // sha256 of the record file, hex
	Host   nft.Gen `json:"host"`
	Zone   nft.Gen `json:"zone"`
}

func (m *Manager) vouchPath(zone string) string { return m.path(RunDir, "vouch", zone+".json") }

// generations reads the rulesets' generations of the host and of zone (""
// for the host's alone); ok is false where they cannot vouch for the walls.
func (m *Manager) generations(zone string) (v vouch, ok bool) {
	if m.Firewall.Variant() != "nft" || !m.Inner.Generational() {
		return vouch{}, false
	}
	var err error
	if v.Host, err = m.Kernel.Generation(""); err != nil {
		return vouch{}, false
	}
	if zone == "" {
		return v, true
	}
	if v.Zone, err = m.Kernel.Generation(zone); err != nil {
		return vouch{}, false
	}
	return v, true
}

// vouched reports whether the walls of zone are as the last full check
// found them, the record being the one read (digest). now is the
// generations it read (zero where they cannot vouch): those a full check
// starts from when they do not vouch, without asking the kernel again.
func (m *Manager) vouched(zone, digest string) (now vouch, ok bool) {
	now, ok = m.generations(zone)
	if !ok {
		return vouch{}, false
	}
	now.Record = digest
	var v vouch
	if err := readJSON(m.vouchPath(zone), &v); err != nil || v.Record != digest {
		return now, false
	}
	return now, now == v
}

// vouchFor records that a full check found zone whole: before holds the
// generations read before the check; they must not have moved during it.
func (m *Manager) vouchFor(zone, digest string, before vouch) {
	after, ok := m.generations(zone)
	if !ok || after.Host != before.Host || after.Zone != before.Zone {
		return
	}
	after.Record = digest
	if err := writeJSON(m.vouchPath(zone), after); err != nil {
		m.Log.Debug("not vouching for the zone's walls", "zone", zone, "err", err)
	}
}

// readRecord reads zone's record alone, and the digest of its file; a nil
// record without error when the zone has none.
func (m *Manager) readRecord(zone string) (*Record, string, error) {
	path := m.recordPath(zone)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	return &rec, hex.EncodeToString(sum[:]), nil
}

// The host's walls are vouched for the same way, for up: what names the
// rules both walls must hold (hostWallRules), with the host's generation when
// an up last found them so without writing.
type hostVouch struct {
	Rules string  `json:"rules"` // hostWallRules
	Host  nft.Gen `json:"host"`
}

func (m *Manager) hostVouchPath() string { return m.path(RunDir, "vouch", "host.json") }

// hostWallRules names the rules p's host walls hold, iptables' and the
// nftables tables', without building them (milliseconds for 50 zones, on
// every up and every convergence of watch): the policy less the zones'
// fields for the inner wall (firewall.Zone's addresses), which the host
// walls, deciding by interface, never list, and this binary, as another
// nszone may build other rules from the same policy. "" when either cannot
// be read: nothing is then vouched for.
func hostWallRules(p firewall.Policy) string {
	key, ok := hostWallKey(p)
	bin := thisBinary()
	if !ok || bin == "" {
		return ""
	}
	return hex.EncodeToString(key[:]) + " " + bin
}

// thisBinary identifies the running executable's file: a new build or an
// upgrade is a new file (a new inode, or at least a new change time).
var thisBinary = sync.OnceValue(func() string {
	var st unix.Stat_t
	if unix.Stat("/proc/self/exe", &st) != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d.%d:%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
})

// hostWallKey fingerprints p without the inner walls' addresses.
func hostWallKey(p firewall.Policy) ([sha256.Size]byte, bool) {
	p.Zones = slices.Clone(p.Zones)
	for i := range p.Zones {
		z := &p.Zones[i]
		z.HostAddrs, z.ToZoneAddrs, z.FromZoneAddrs, z.ZoneNets = nil, nil, nil, nil
	}
	b, err := json.Marshal(p)
	return sha256.Sum256(b), err == nil
}

// hostVouched reports whether the host's walls hold rules as the last up
// found them, at generation gen.
func (m *Manager) hostVouched(rules string) (gen nft.Gen, ok bool) {
	var v hostVouch
	if err := readJSON(m.hostVouchPath(), &v); err != nil || rules == "" || v.Rules != rules {
		return nft.Gen{}, false
	}
	now, ok := m.generations("")
	if !ok || now.Host != v.Host {
		return nft.Gen{}, false
	}
	return now.Host, true
}

// watchCommits starts hearing who commits to the host's rulesets, where
// the generations can vouch for its walls; nil otherwise.
func (m *Manager) watchCommits() Commits {
	if _, ok := m.generations(""); !ok {
		return nil
	}
	c, err := m.Kernel.WatchCommits()
	if err != nil {
		m.Log.Debug("not hearing the host's commits", "err", err)
		return nil
	}
	return c
}

// onlyOurs is the host's generation after this process's writes to its
// walls when every commit since before was this process's (a thread of
// its own, or an iptables-restore it ran): the walls then hold what was
// read and written, and may be vouched for without being read back.
// Otherwise, the zero vouch: the next up reads them.
func (m *Manager) onlyOurs(commits Commits, before vouch) vouch {
	writers := m.Firewall.Writers()
	after, ok := m.generations("")
	if commits == nil || !ok || before.Host.Cookie != after.Host.Cookie || before.Host.ID == after.Host.ID {
		// A write that committed nothing leaves what was read, gaps and all.
		return vouch{}
	}
	by, err := commits.By(before.Host.ID, after.Host.ID, commitsHeard)
	if err != nil {
		m.Log.Debug("not vouching for the host's walls", "err", err)
		return vouch{}
	}
	for _, id := range by {
		if !slices.Contains(writers, id) && !m.Kernel.OwnThread(id) {
			m.Log.Debug("not vouching for the host's walls: another program committed", "thread", id)
			return vouch{}
		}
	}
	return after
}

// commitsHeard bounds the wait for the notices of commits already made:
// the kernel sends them as it commits, so they are in the socket already.
const commitsHeard = time.Second

// vouchForHost records that the host's walls hold rules when no commit
// moved the host's generation since before, and returns the generation it
// vouched at (zero when it did not).
func (m *Manager) vouchForHost(rules string, before vouch) nft.Gen {
	after, ok := m.generations("")
	if !ok || rules == "" || after.Host != before.Host {
		return nft.Gen{}
	}
	if err := writeJSON(m.hostVouchPath(), hostVouch{Rules: rules, Host: after.Host}); err != nil {
		m.Log.Debug("not vouching for the host's walls", "err", err)
		return nft.Gen{}
	}
	return after.Host
}
