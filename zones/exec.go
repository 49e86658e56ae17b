package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/veth"
)

// ErrNotUp is returned by Ready for a zone that is not (wholly) up.
var ErrNotUp = errors.New("refusing to start a program")

// Entry is what exec needs to start a program in a zone that is ready.
type Entry struct {
	Netns  string        // the zone's pin, /run/netns/ZONE
	Etc    string        // its files, /etc/netns/ZONE
	Access config.Access // who may enter without sudo, as the zone was brought up
}

// Ready checks that zone is one of nszone's and wholly in place, policy
// included, so exec never starts a program in a zone that is open or
// half-made.
func (m *Manager) Ready(zone string) (*Entry, error) {
	if !config.ZoneNameRE.MatchString(zone) {
		return nil, fmt.Errorf("%q is not a zone name (must match %s)", zone, config.ZoneNameRE)
	}
	recs, _, err := m.records()
	if err != nil {
		return nil, err
	}
	rec := recs[zone]
	if rec == nil {
		return nil, fmt.Errorf("%w in zone %s: it is not up (run nszone up)", ErrNotUp, zone)
	}
	gaps, err := m.readyGaps(zone, rec, recs)
	if err != nil {
		return nil, err
	}
	if len(gaps) > 0 {
		return nil, fmt.Errorf("%w in zone %s: it is degraded, missing %s (run nszone up to repair)", ErrNotUp, zone, strings.Join(gaps, "; "))
	}
	return &Entry{Netns: veth.PinDir + "/" + zone, Etc: m.path(EtcNetns, zone), Access: rec.Access}, nil
}

// Admission is what nszone-enter checks a caller against, read from the
// zone's record alone.
type Admission struct {
	Access config.Access // who may enter without sudo, as the zone was brought up
	Netns  veth.NsID     // the zone's namespace, as up made it
	Record string        // the record both were read from
}

// Admission reads who may enter zone and which namespace it is. It reads
// nothing else: nszone-enter asks it before it checks anything of the zone
// for a caller who may not enter.
func (m *Manager) Admission(zone string) (*Admission, error) {
	if !config.ZoneNameRE.MatchString(zone) {
		return nil, fmt.Errorf("%q is not a zone name (must match %s)", zone, config.ZoneNameRE)
	}
	var rec Record
	path := m.recordPath(zone)
	if err := readJSON(path, &rec); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in zone %s: it is not up (run nszone up)", ErrNotUp, zone)
	} else if err != nil {
		return nil, err
	}
	return &Admission{Access: rec.Access, Netns: rec.Netns, Record: path}, nil
}

// readyGaps is missing, with the host's wall read over netlink where the
// host uses iptables-nft: exec must not cost a process per table.
func (m *Manager) readyGaps(zone string, rec *Record, recs map[string]*Record) ([]string, error) {
	if ipt, ok := m.Firewall.(*firewall.IPTables); ok && ipt.Mode == "nft" {
		// The zone's part of the ruleset does not depend on the other
		// zones: building it alone keeps exec's cost flat in their number.
		want := firewall.Build(firewall.Policy{LAN: rec.LAN, IfWildcard: ifWildcard, Zones: []firewall.Zone{rec.Policy}})
		comments := map[firewall.Key]map[string][]string{}
		for _, k := range firewall.Tables {
			var chains []string
			if t := want[k]; t != nil {
				chains = firewall.ChainsOf(t, zone)
			}
			c, err := nft.HostComments(k.Family, k.Table, chains)
			if err != nil {
				return nil, err
			}
			comments[k] = c
		}
		var gaps []string
		for _, g := range firewall.MissingByCount(comments, want, zone) {
			gaps = append(gaps, "firewall "+g)
		}
		return append(gaps, m.zoneGaps(zone, rec, hostNow(recs))...), nil
	}
	cur, err := firewall.Current(m.Firewall, firewall.Tables)
	if err != nil {
		return nil, err
	}
	return m.missing(zone, rec, cur, m.recordedRuleset(recs), hostNow(recs)), nil
}
