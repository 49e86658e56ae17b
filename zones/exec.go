package zones

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
)

// ErrNotUp is returned by Ready for a zone that is not (wholly) up.
var ErrNotUp = errors.New("refusing to start a program")

// ErrDegraded is returned by Ready, beside ErrNotUp, for a zone that is up
// with a gap in its walls: nszone watch may be about to repair it.
var ErrDegraded = errors.New("degraded")

// Entry is what exec needs to start a program in a zone that is ready.
type Entry struct {
	Netns  string        // the zone's pin, /run/netns/ZONE
	Etc    string        // its files, /etc/netns/ZONE
	Access config.Access // who may enter without sudo, as the zone was brought up
	// Warning says what the zone lacks that breaks, but opens, nothing.
	Warning string
}

// Ready checks that zone is one of nszone's and wholly in place, policy
// included, so exec never starts a program in a zone that is open or
// half-made.
func (m *Manager) Ready(zone string) (*Entry, error) {
	if !config.ZoneNameRE().MatchString(zone) {
		return nil, fmt.Errorf("%q is not a zone name (must match %s)", zone, config.ZoneNameRE())
	}
	rec, digest, err := m.readRecord(zone)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		if _, _, err := m.owned(zone, nil); errors.Is(err, ErrNotOwned) {
			return nil, fmt.Errorf("%w in zone %s: %w", ErrNotUp, zone, err)
		}
		return nil, fmt.Errorf("%w in zone %s: it is not up (run nszone up)", ErrNotUp, zone)
	}
	e := &Entry{Netns: netns.PinDir + "/" + zone, Etc: m.path(EtcNetns, zone), Access: rec.Access}
	// The fast path: walls as the last full check found them (vouch.go);
	// the link, the via, and the zone's files, which no generation covers,
	// are looked at all the same.
	before, vouched := m.vouched(zone, digest)
	if vouched && len(m.linkAndFileGaps(zone, rec, false)) == 0 && len(m.publishGaps(rec.Policy)) == 0 {
		return e, nil
	}
	recs, _, err := m.records()
	if err != nil {
		return nil, err
	}
	if recs[zone] == nil {
		return nil, fmt.Errorf("%w in zone %s: it is not up (run nszone up)", ErrNotUp, zone)
	}
	g, err := m.readyGaps(zone, recs[zone], recs)
	if err != nil {
		return nil, err
	}
	if len(g.open) == 0 && len(g.closed) == 0 {
		m.vouchFor(zone, digest, before)
	}
	if len(g.open) > 0 {
		return nil, fmt.Errorf("%w in zone %s: it is %w, missing %s (run nszone up to repair)", ErrNotUp, zone, ErrDegraded, summary(g.open))
	}
	if len(g.closed) > 0 {
		// Closed, not open: the program starts, and is told why it may
		// not reach what it should.
		e.Warning = fmt.Sprintf("zone %s is degraded but closed: missing %s (run nszone up to repair)", zone, summary(g.closed))
	}
	return e, nil
}

// Admission is what nszone-enter checks a caller against, read from the
// zone's record alone.
type Admission struct {
	Access config.Access // who may enter without sudo, as the zone was brought up
	Netns  netns.NsID    // the zone's namespace, as up made it
	Record string        // the record both were read from
	// Digest is the SHA-256 of the record as read: read again, the same
	// digest is the same record, every field of it.
	Digest [sha256.Size]byte
}

// Admission reads who may enter zone and which namespace it is. It reads
// nothing else: nszone-enter asks it before it checks anything of the zone
// for a caller who may not enter.
func (m *Manager) Admission(zone string) (*Admission, error) {
	if !config.ZoneNameRE().MatchString(zone) {
		return nil, fmt.Errorf("%q is not a zone name (must match %s)", zone, config.ZoneNameRE())
	}
	path := m.recordPath(zone)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in zone %s: it is not up (run nszone up)", ErrNotUp, zone)
	} else if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return &Admission{Access: rec.Access, Netns: rec.Netns, Record: path, Digest: sha256.Sum256(data)}, nil
}

// readyGaps is missing, with the host's iptables wall read over netlink
// where the host uses iptables-nft: exec must not cost a process per table.
func (m *Manager) readyGaps(zone string, rec *Record, recs map[string]*Record) (gaps, error) {
	policy := recordedPolicy(recs)
	if m.Firewall.Variant() == "nft" {
		// The zone's part of the ruleset does not depend on the other
		// zones: building it alone keeps exec's cost flat in their number.
		want := firewall.Build(firewall.Policy{LAN: rec.LAN, IfWildcard: ifWildcard, Zones: []firewall.Zone{rec.Policy}})
		comments := map[firewall.Key]map[string][]string{}
		for _, k := range firewall.Tables {
			var chains []string
			if t := want[k]; t != nil {
				chains = firewall.ChainsOf(t, zone)
			}
			c, err := m.Kernel.HostComments(k.Family, k.Table, chains)
			if err != nil {
				return gaps{}, err
			}
			comments[k] = c
		}
		return m.missing(zone, rec, firewall.MissingByCount(comments, want, zone), m.hostWallGaps(policy), m.hostNow(recs)), nil
	}
	cur, err := firewall.Current(m.Firewall, firewall.Tables)
	if err != nil {
		return gaps{}, err
	}
	return m.missing(zone, rec, firewall.Missing(cur, firewall.Build(policy), zone), m.hostWallGaps(policy), m.hostNow(recs)), nil
}

// summary lists a few gaps and counts the rest: a flushed wall has dozens.
func summary(gaps []string) string {
	const shown = 3
	if len(gaps) <= shown+1 {
		return strings.Join(gaps, "; ")
	}
	return fmt.Sprintf("%s; and %d more (nszone status lists them)", strings.Join(gaps[:shown], "; "), len(gaps)-shown)
}
