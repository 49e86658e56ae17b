package zones

import (
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// fill sets every field of the struct v points at to a value that is not
// its zero, n making the values differ between calls.
func fill(t *testing.T, v reflect.Value, n int) {
	t.Helper()
	for i := range v.NumField() {
		f := v.Field(i)
		switch x := f.Addr().Interface().(type) {
		case *string:
			*x = strings.Repeat("x", n) + v.Type().Field(i).Name
		case *bool:
			*x = n%2 == 1
		case *int:
			*x = 1400 + n
		case *uint16:
			*x = uint16(n)
		case *uint64:
			*x = uint64(1000 + n)
		case *netip.Prefix:
			*x = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n), byte(i), 0}), 24)
		case *netip.Addr:
			*x = netip.AddrFrom4([4]byte{10, byte(n), byte(i), 1})
		case *[]string:
			*x = []string{strings.Repeat("y", n)}
		case *[]netip.Addr:
			*x = []netip.Addr{netip.AddrFrom4([4]byte{10, byte(n), byte(i), 2})}
		case *[]netip.Prefix:
			*x = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n), byte(i), 0}), 24)}
		case *[]firewall.Published:
			var p firewall.Published
			fill(t, reflect.ValueOf(&p).Elem(), n)
			*x = []firewall.Published{p}
		case *[]firewall.Pinhole:
			var ph firewall.Pinhole
			fill(t, reflect.ValueOf(&ph).Elem(), n)
			*x = []firewall.Pinhole{ph}
		default:
			if f.Kind() != reflect.Struct {
				t.Fatalf("fill: %s.%s is a %s: teach fill about it", v.Type(), v.Type().Field(i).Name, f.Type())
			}
			fill(t, f, n)
		}
	}
}

func filledRecord(t *testing.T, n int) *Record {
	r := &Record{}
	fill(t, reflect.ValueOf(r).Elem(), n)
	return r
}

// Every field of every type a record is made of is stored and read back:
// a field added to veth.Pair or firewall.Zone that the schema forgets
// fails here, instead of escaping idempotency and plan.
func TestRecordSchemaKeepsEveryField(t *testing.T) {
	r := filledRecord(t, 1)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, &back) {
		t.Fatalf("a field is lost on the way through the record:\n%+v\n%+v", r, &back)
	}
}

// A change in any one field is one stored name in changedFields.
func TestChangedFieldsNamesEachField(t *testing.T) {
	a, b := filledRecord(t, 1), filledRecord(t, 2)
	got := changedFields(a, b)
	if len(got) < 30 || !reflect.DeepEqual(got, changedFields(b, a)) {
		t.Fatalf("changedFields of two records differing everywhere: %v", got)
	}
	for _, f := range got {
		if f == "version" || strings.Contains(f, "..") || f == "" {
			t.Errorf("odd field name %q", f)
		}
	}
	if len(changedFields(a, filledRecord(t, 1))) != 0 || !recordEqual(a, filledRecord(t, 1)) {
		t.Fatal("equal records differ")
	}
	c := filledRecord(t, 1)
	c.Policy.ZoneNets = nil
	if got := changedFields(a, c); !reflect.DeepEqual(got, []string{"policy.zone_nets"}) {
		t.Fatalf("changedFields = %v, want [policy.zone_nets]", got)
	}
	c.Policy.ZoneNets, a.Policy.ZoneNets = []netip.Prefix{}, nil
	if !recordEqual(a, c) {
		t.Fatal("an empty list and none differ, though they are the same on disk")
	}
}

// The records of nszone before RecordVersion 1 read as they were meant;
// the version written now has exactly the names of testdata/records/v1.json
// (which must never change but by adding).
func TestRecordVersions(t *testing.T) {
	want := &Record{Name: "web", Netns: netns.NsID{Dev: 4, Ino: 4026532301},
		Pair: veth.Pair{Zone: "web", HostName: "nsz-web", PeerName: "eth0", Alias: "nszone:web",
			Host4: netip.MustParsePrefix("10.250.0.13/30"), Zone4: netip.MustParsePrefix("10.250.0.14/30"),
			Host6: netip.MustParsePrefix("fd6e:737a:7a6f:3::1/64"), Zone6: netip.MustParsePrefix("fd6e:737a:7a6f:3::2/64")},
		Policy: firewall.Zone{Name: "web", HostIf: "nsz-web", Uplink: "eth0", Net4: netip.MustParsePrefix("10.250.0.12/30"),
			Net6: netip.MustParsePrefix("fd6e:737a:7a6f:3::/64"), IPv6: true, Internet: true, Host: true, ToHostIfs: []string{"nsz-lan"},
			Pinholes:    []firewall.Pinhole{{Dst: netip.MustParsePrefix("192.168.50.10/32"), Proto: "tcp", PortLo: 22, PortHi: 22}},
			HostAddrs:   []netip.Addr{netip.MustParseAddr("10.250.0.13"), netip.MustParseAddr("192.168.1.10")},
			ToZoneAddrs: []netip.Addr{netip.MustParseAddr("10.250.0.6")}, ZoneNets: []netip.Prefix{netip.MustParsePrefix("10.250.0.0/16")}},
		Allow: []string{"internet", "192.168.50.10:22/tcp", "host", "zone:lan"}, DNS: []string{"192.168.1.1"},
		Openings: []string{"192.168.1.1:53"}, IPv6: true, LAN: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")},
		Access: config.Access{Users: []string{"alice"}, Groups: []string{"staff"}, NoNewPrivs: true, Confine: "strict"}}
	for _, name := range []string{"v0.json", "v1.json"} {
		var got Record
		if err := readJSON("testdata/records/"+name, &got); err != nil {
			t.Fatal(err)
		}
		if !recordEqual(&got, want) {
			t.Errorf("%s reads differently: %v", name, changedFields(&got, want))
		}
	}
	b, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := os.ReadFile("testdata/records/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(b)+"\n" != string(v1) {
		t.Errorf("the record written now differs from testdata/records/v1.json (names on disk must not change):\n%s", b)
	}
	var r Record
	if err := json.Unmarshal([]byte(`{"version": 99, "name": "web"}`), &r); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("a record of a newer version: err = %v", err)
	}
}
