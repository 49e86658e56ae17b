package firewall

import "testing"

func TestNftName(t *testing.T) {
	for _, k := range Tables {
		got, ok := ParseNftName(k.NftName())
		if !ok || got != k {
			t.Errorf("ParseNftName(%q) = %v %v, want %v", k.NftName(), got, ok, k)
		}
	}
	for _, bad := range []string{"", "ip", "inet filter", "ip  filter", "ip filter x", "arp filter"} {
		if k, ok := ParseNftName(bad); ok {
			t.Errorf("ParseNftName(%q) = %v, want no table", bad, k)
		}
	}
}
