package zones

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// A record on disk is nszone's own schema, not the Go types it is made of:
// nszone-enter of the same or another version reads it, and so does the
// next nszone after an upgrade with zones up.
//
// The json names below must never change. Add a field with a new name;
// raise RecordVersion when a field's meaning changes, and keep reading the
// versions before it (as version 0 is read below).

// RecordVersion is the version of the records this nszone writes.
const RecordVersion = 1

type storedRecord struct {
	Version  int            `json:"version"`
	Name     string         `json:"name"`
	Netns    storedNsID     `json:"netns"`
	Link     storedLink     `json:"link"`
	Policy   storedPolicy   `json:"policy"`
	Allow    []string       `json:"allow"`
	DNS      []string       `json:"dns"`
	Openings []string       `json:"dns_openings,omitempty"`
	IPv6     bool           `json:"ipv6"`
	LAN      []netip.Prefix `json:"lan"`
	Access   storedAccess   `json:"access"`
}

type storedNsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

type storedLink struct {
	Zone     string       `json:"zone"`
	HostName string       `json:"host_interface"`
	PeerName string       `json:"zone_interface"`
	Alias    string       `json:"alias"`
	Host4    netip.Prefix `json:"host4"`
	Zone4    netip.Prefix `json:"zone4"`
	Host6    netip.Prefix `json:"host6"`
	Zone6    netip.Prefix `json:"zone6"`
	MTU      int          `json:"mtu,omitempty"`
}

type storedPolicy struct {
	Name          string          `json:"name"`
	HostIf        string          `json:"host_interface"`
	Uplink        string          `json:"uplink"`
	Net4          netip.Prefix    `json:"net4"`
	Net6          netip.Prefix    `json:"net6"`
	IPv6          bool            `json:"ipv6"`
	Internet      bool            `json:"internet"`
	LAN           bool            `json:"lan"`
	Host          bool            `json:"host"`
	ToHostIfs     []string        `json:"to_host_interfaces,omitempty"`
	Pinholes      []storedPinhole `json:"pinholes,omitempty"`
	HostAddrs     []netip.Addr    `json:"host_addrs,omitempty"`
	ToZoneAddrs   []netip.Addr    `json:"to_zone_addrs,omitempty"`
	FromZoneAddrs []netip.Addr    `json:"from_zone_addrs,omitempty"`
	ZoneNets      []netip.Prefix  `json:"zone_nets,omitempty"`
	Addr4         netip.Addr      `json:"addr4,omitzero"`
	Addr6         netip.Addr      `json:"addr6,omitzero"`
	Publish       []storedPublish `json:"publish,omitempty"`
	Via           string          `json:"via,omitempty"`
	NoLog         bool            `json:"no_log,omitempty"`
}

type storedPublish struct {
	Addr     netip.Addr `json:"addr,omitzero"`
	HostPort uint16     `json:"host_port"`
	ZonePort uint16     `json:"zone_port"`
	Proto    string     `json:"proto"`
}

type storedPinhole struct {
	Dst    netip.Prefix `json:"dst"`
	Proto  string       `json:"proto,omitempty"`
	PortLo uint16       `json:"port_lo,omitempty"`
	PortHi uint16       `json:"port_hi,omitempty"`
}

type storedAccess struct {
	Users      []string `json:"users,omitempty"`
	Groups     []string `json:"groups,omitempty"`
	NoNewPrivs bool     `json:"no_new_privs,omitempty"`
	Confine    string   `json:"confine,omitempty"`
}

func (r *Record) stored() storedRecord {
	p, z := r.Pair, r.Policy
	s := storedRecord{Version: RecordVersion, Name: r.Name, Netns: storedNsID(r.Netns),
		Link: storedLink{Zone: p.Zone, HostName: p.HostName, PeerName: p.PeerName, Alias: p.Alias,
			Host4: p.Host4, Zone4: p.Zone4, Host6: p.Host6, Zone6: p.Zone6, MTU: p.MTU},
		Policy: storedPolicy{Name: z.Name, HostIf: z.HostIf, Uplink: z.Uplink, Net4: z.Net4, Net6: z.Net6,
			IPv6: z.IPv6, Internet: z.Internet, LAN: z.LAN, Host: z.Host, ToHostIfs: z.ToHostIfs,
			HostAddrs: z.HostAddrs, ToZoneAddrs: z.ToZoneAddrs, FromZoneAddrs: z.FromZoneAddrs, ZoneNets: z.ZoneNets,
			Addr4: z.Addr4, Addr6: z.Addr6, Via: z.Via, NoLog: z.NoLog},
		Allow: r.Allow, DNS: r.DNS, Openings: r.Openings, IPv6: r.IPv6, LAN: r.LAN, Access: storedAccess(r.Access)}
	for _, ph := range z.Pinholes {
		s.Policy.Pinholes = append(s.Policy.Pinholes, storedPinhole(ph))
	}
	for _, pub := range z.Publish {
		s.Policy.Publish = append(s.Policy.Publish, storedPublish(pub))
	}
	return s
}

func (s storedRecord) record() *Record {
	l, z := s.Link, s.Policy
	r := &Record{Name: s.Name, Netns: netns.NsID(s.Netns),
		Pair: veth.Pair{Zone: l.Zone, HostName: l.HostName, PeerName: l.PeerName, Alias: l.Alias,
			Host4: l.Host4, Zone4: l.Zone4, Host6: l.Host6, Zone6: l.Zone6, MTU: l.MTU},
		Policy: firewall.Zone{Name: z.Name, HostIf: z.HostIf, Uplink: z.Uplink, Net4: z.Net4, Net6: z.Net6,
			IPv6: z.IPv6, Internet: z.Internet, LAN: z.LAN, Host: z.Host, ToHostIfs: z.ToHostIfs,
			HostAddrs: z.HostAddrs, ToZoneAddrs: z.ToZoneAddrs, FromZoneAddrs: z.FromZoneAddrs, ZoneNets: z.ZoneNets,
			Addr4: z.Addr4, Addr6: z.Addr6, Via: z.Via, NoLog: z.NoLog},
		Allow: s.Allow, DNS: s.DNS, Openings: s.Openings, IPv6: s.IPv6, LAN: s.LAN, Access: config.Access(s.Access)}
	for _, ph := range z.Pinholes {
		r.Policy.Pinholes = append(r.Policy.Pinholes, firewall.Pinhole(ph))
	}
	for _, pub := range z.Publish {
		r.Policy.Publish = append(r.Policy.Publish, firewall.Published(pub))
	}
	return r
}

// MarshalJSON writes the record in the stored schema.
func (r *Record) MarshalJSON() ([]byte, error) { return json.Marshal(r.stored()) }

// UnmarshalJSON reads a record of this version or an older one.
func (r *Record) UnmarshalJSON(b []byte) error {
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v.Version {
	case 0:
		var old recordV0
		if err := json.Unmarshal(b, &old); err != nil {
			return err
		}
		*r = Record(old)
	case RecordVersion:
		var s storedRecord
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = *s.record()
	default:
		return fmt.Errorf("record version %d is newer than this nszone knows (%d): was a newer nszone run?", v.Version, RecordVersion)
	}
	return nil
}

// recordV0 is the record of nszone before RecordVersion 1: Record as
// encoding/json writes it without MarshalJSON, veth.Pair and firewall.Zone
// under their Go field names. Should one of those be renamed,
// TestRecordVersions fails on testdata/records/v0.json.
type recordV0 Record

// changedFields names, by their stored names ("policy.internet",
// "link.zone4"), the fields in which two records differ as stored: the one
// comparison behind recordEqual and plan's list of changes. A field added
// to the schema takes part without more code. An empty list and a missing
// one are the same, as they are on disk.
func changedFields(a, b *Record) []string {
	return diffValues(reflect.ValueOf(a.stored()), reflect.ValueOf(b.stored()), "")
}

func diffValues(a, b reflect.Value, path string) []string {
	switch {
	case a.Kind() == reflect.Struct && strings.HasPrefix(a.Type().Name(), "stored"):
		var out []string
		for i := range a.NumField() {
			name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("json"), ",")
			if path != "" {
				name = path + "." + name
			}
			out = append(out, diffValues(a.Field(i), b.Field(i), name)...)
		}
		return out
	case a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0:
		return nil
	case !reflect.DeepEqual(a.Interface(), b.Interface()):
		return []string{path}
	}
	return nil
}

func recordEqual(a, b *Record) bool { return len(changedFields(a, b)) == 0 }
