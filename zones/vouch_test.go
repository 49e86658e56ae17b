package zones

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nszone/nszone/firewall"
)

// innerFields are firewall.Zone's fields for the inner wall alone, which
// hostWallKey leaves out.
var innerFields = []string{"HostAddrs", "ToZoneAddrs", "FromZoneAddrs", "ZoneNets"}

func keyPolicy() firewall.Policy {
	return firewall.Policy{LAN: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, IfWildcard: "nsz-+", Zones: []firewall.Zone{
		{Name: "a", HostIf: "nsz-a", Uplink: "eth0", Net4: netip.MustParsePrefix("10.250.0.0/30"), Internet: true, ToHostIfs: []string{"nsz-b"},
			HostAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.2")}, ZoneNets: []netip.Prefix{netip.MustParsePrefix("10.250.0.0/16")}},
		{Name: "b", HostIf: "nsz-b", Uplink: "eth0", Net4: netip.MustParsePrefix("10.250.0.4/30"), IPv6: true,
			Net6: netip.MustParsePrefix("fd6e:737a:0:1::/64"), LAN: true, Host: true,
			Pinholes:      []firewall.Pinhole{{Dst: netip.MustParsePrefix("192.168.1.10/32"), Proto: "tcp", PortLo: 22, PortHi: 22}},
			FromZoneAddrs: []netip.Addr{netip.MustParseAddr("10.250.0.2")}},
	}}
}

// Every field of a zone's policy that is not for the inner wall alone is
// in the key: a field added to firewall.Zone is either in it or a test
// failure here.
func TestHostWallKey(t *testing.T) {
	base := keyPolicy()
	k0, ok := hostWallKey(base)
	if !ok {
		t.Fatal("no key")
	}
	zt := reflect.TypeFor[firewall.Zone]()
	for i := range zt.NumField() {
		f := zt.Field(i)
		p := keyPolicy()
		p.Zones = slices.Clone(p.Zones)
		v := reflect.ValueOf(&p.Zones[0]).Elem().Field(i)
		if !f.IsExported() {
			t.Errorf("firewall.Zone.%s: unexported, hence not in the key", f.Name)
			continue
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16:
			v.SetInt(v.Int() + 1)
		case reflect.Slice:
			v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
		case reflect.Struct:
			switch v.Interface().(type) {
			case netip.Prefix:
				v.Set(reflect.ValueOf(netip.MustParsePrefix("10.99.0.0/30")))
			case netip.Addr:
				v.Set(reflect.ValueOf(netip.MustParseAddr("10.99.0.2")))
			default:
				t.Errorf("firewall.Zone.%s: a %s, which this test does not know how to change", f.Name, v.Type())
				continue
			}
		default:
			t.Errorf("firewall.Zone.%s: a %s, which this test does not know how to change", f.Name, v.Type())
			continue
		}
		k, _ := hostWallKey(p)
		if inner := slices.Contains(innerFields, f.Name); inner != (k == k0) {
			t.Errorf("firewall.Zone.%s changed: key changed %v, want %v", f.Name, k != k0, !inner)
		}
	}
	p := keyPolicy()
	p.IfWildcard = "x+"
	if k, _ := hostWallKey(p); k == k0 {
		t.Error("the key ignores IfWildcard")
	}
	p = keyPolicy()
	p.LAN = nil
	if k, _ := hostWallKey(p); k == k0 {
		t.Error("the key ignores LAN")
	}
}

// The host walls never list the inner walls' addresses, so what names their
// rules stays across a change of them; any other change names new rules.
func TestHostWallRules(t *testing.T) {
	a := keyPolicy()
	b := keyPolicy()
	b.Zones = slices.Clone(b.Zones)
	b.Zones[0].HostAddrs = append(slices.Clone(b.Zones[0].HostAddrs), netip.MustParseAddr("198.51.100.7"))
	b.Zones[1].FromZoneAddrs, b.Zones[1].ZoneNets = nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	b.Zones[1].ToZoneAddrs = []netip.Addr{netip.MustParseAddr("10.250.0.6")}
	if firewall.Build(a).String() != firewall.Build(b).String() || !reflect.DeepEqual(firewall.HostRules(a), firewall.HostRules(b)) {
		t.Fatal("the host walls change with the inner walls' addresses: hostWallRules must not leave them out")
	}
	da := hostWallRules(a)
	if da == "" || !strings.HasSuffix(da, " "+thisBinary()) {
		t.Fatalf("hostWallRules = %q, want the policy's key and this binary (%s)", da, thisBinary())
	}
	if db := hostWallRules(b); db != da {
		t.Errorf("%s, then %s for the same host walls", da, db)
	}
	c := keyPolicy()
	c.Zones[1].Internet = true
	if dc := hostWallRules(c); dc == da {
		t.Error("hostWallRules did not change with the host walls")
	}
}
