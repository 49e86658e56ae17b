package nft

import (
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// known is what apply last found or wrote of a table, per namespace and
// family, with the namespace's generation then. While the generation is the
// same, nothing of the namespace's ruleset changed (see Gen), so a later
// apply there needs no reading: nszone watch then repairs every zone's
// inner wall for a new host address with a generation read and one small
// write per zone. Missing never takes it: status and exec read the kernel.
var known = struct {
	sync.Mutex
	tables map[knownKey]knownTable
}{tables: map[knownKey]knownTable{}}

type knownKey struct {
	cookie uint64 // the namespace's
	family nftables.TableFamily
}

type knownTable struct {
	id uint32 // the namespace's generation
	s  *state // never changed once known
}

// maxKnown bounds known: namespaces gone leave their entries behind.
const maxKnown = 4096

// current returns what the namespace of c holds of the table of family
// fam, and the generation it holds it at: the zero Gen when that is not
// sure (the ruleset changed while it was read, or the generation cannot
// be read).
func current(c *netlink.Conn, fam nftables.TableFamily) (Gen, *state, error) {
	before, err := generationOn(c)
	if err != nil {
		s, err := readOn(c, fam)
		return Gen{}, s, err
	}
	known.Lock()
	k, ok := known.tables[knownKey{before.Cookie, fam}]
	known.Unlock()
	if ok && k.id == before.ID {
		return before, k.s, nil
	}
	s, err := readOn(c, fam)
	if err != nil {
		return Gen{}, nil, err
	}
	if after, err := generationOn(c); err != nil || after != before {
		return Gen{}, s, nil
	}
	return before, s, nil
}

// remember notes that the table of family fam holds s at generation g; a
// nil s, or the zero g, forgets what was known of it.
func remember(g Gen, fam nftables.TableFamily, s *state) {
	if g == (Gen{}) {
		return
	}
	known.Lock()
	defer known.Unlock()
	key := knownKey{g.Cookie, fam}
	if s == nil {
		delete(known.tables, key)
		return
	}
	if len(known.tables) >= maxKnown {
		clear(known.tables)
	}
	known.tables[key] = knownTable{g.ID, s}
}
