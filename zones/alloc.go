package zones

import (
	"fmt"
	"net/netip"
)

// The pools zone link subnets come from: a /30 and a /64 per zone. Both are
// private ranges; a block is skipped when any host route or address touches
// it, so a zone never shadows part of the host's own network.
var (
	pool4 = netip.MustParsePrefix("10.250.0.0/16")
	pool6 = netip.MustParsePrefix("fd6e:737a:7a6f::/48")
)

const (
	bits4 = 30
	bits6 = 64
)

// allocator hands out link subnets that clash with nothing already in use.
type allocator struct {
	used []netip.Prefix // host routes and addresses, and subnets of other zones
}

func (al *allocator) free(p netip.Prefix) bool {
	for _, u := range al.used {
		if u.Overlaps(p) {
			return false
		}
	}
	return true
}

func (al *allocator) take(p netip.Prefix) { al.used = append(al.used, p) }

// next returns the lowest free block of size bits in pool.
func (al *allocator) next(pool netip.Prefix, bits int) (netip.Prefix, error) {
	n := 1 << (min(bits-pool.Bits(), 20)) // never scan more than a million blocks
	addr := pool.Addr()
	for i := 0; i < n; i++ {
		p := netip.PrefixFrom(addr, bits)
		if al.free(p) {
			al.take(p)
			return p, nil
		}
		addr = blockAfter(addr, bits)
		if !pool.Contains(addr) {
			break
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /%d left in %s: set subnet/subnet6 for the zone in the zones file", bits, pool)
}

// blockAfter returns the first address of the block of size bits after a's block.
func blockAfter(a netip.Addr, bits int) netip.Addr {
	b := a.AsSlice()
	// Add 1 at bit position bits-1 (counting from the most significant bit).
	byteIdx, bit := (bits-1)/8, 7-uint((bits-1)%8)
	carry := uint16(1) << bit
	for i := byteIdx; i >= 0 && carry > 0; i-- {
		sum := uint16(b[i]) + carry
		b[i] = byte(sum)
		carry = sum >> 8
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// hostAndZone returns the first two usable addresses of a link subnet: the
// host end and the zone end. For a /30 that is .1 and .2; for IPv6 ::1 and ::2.
func hostAndZone(p netip.Prefix) (host, zone netip.Prefix) {
	h := p.Masked().Addr().Next()
	return netip.PrefixFrom(h, p.Bits()), netip.PrefixFrom(h.Next(), p.Bits())
}
