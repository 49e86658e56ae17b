package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// hostRecord remembers what the host looked like before the first up, so
// the last down can put it back exactly.
type hostRecord struct {
	Sysctls     map[string]string `json:"sysctls"`      // key -> value before nszone changed it
	CreatedDirs []string          `json:"created_dirs"` // directories nszone made (removed by the last down)
	// SysctlsSet is what nszone wrote to each key of Sysctls: the last
	// down restores a key only while it still holds that value.
	SysctlsSet map[string]string `json:"sysctls_set,omitempty"`
	// ForwardNeeds lists, for each forwarding key of Sysctls, what already
	// needed forwarding (forwardNeeds) when nszone turned it on: it lived
	// without forwarding before, so it does not keep forwarding on at the
	// last down; anything else that needs it then does.
	ForwardNeeds map[string][]string `json:"forward_needs,omitempty"`
	// CreatedTables lists the iptables-nft tables ("ip filter") that did
	// not exist before nszone first wrote to them: the last down deletes
	// each that is empty again (recordNewTables, restoreTables).
	CreatedTables []string `json:"created_tables,omitempty"`
	// Firewall is the iptables variant the first up chose: every later
	// command uses it, so rules never end up split between nft and legacy
	// even if the host's default changes while zones are up.
	Firewall string `json:"firewall,omitempty"`
}

// RecordedFirewall returns the iptables variant recorded by the first up,
// or "" when nothing is up.
func RecordedFirewall() string {
	h := &hostRecord{}
	if err := readJSON(HostRecord, h); err != nil {
		return ""
	}
	if h.Firewall != "nft" && h.Firewall != "legacy" {
		return "" // a damaged record: detect again rather than run a made-up iptables-*
	}
	return h.Firewall
}

// HostRecord is where up records what it changed on the host.
const HostRecord = RunDir + "/host.json"

func (m *Manager) hostRecordPath() string { return m.path(HostRecord) }

func (m *Manager) readHostRecord() (*hostRecord, error) {
	h := &hostRecord{Sysctls: map[string]string{}}
	if err := readJSON(m.hostRecordPath(), h); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if h.Sysctls == nil {
		h.Sysctls = map[string]string{}
	}
	return h, nil
}

// ensureDir makes dir, remembering in h that nszone created it.
func (m *Manager) ensureDir(h *hostRecord, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if !slices.Contains(h.CreatedDirs, dir) {
		h.CreatedDirs = append(h.CreatedDirs, dir)
		// Recorded before it exists: a crash must not hide that we made it.
		if err := writeJSON(m.hostRecordPath(), h); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return nil
}

// forwarding lists the sysctls up sets: forwarding for both families, and
// accept_ra=2 on the uplink where it was 1, since enabling IPv6 forwarding
// would otherwise make the uplink ignore router advertisements and lose
// its IPv6 default route.
func forwarding(uplink string, v6 bool) [][2]string {
	s := [][2]string{{"net.ipv4.ip_forward", "1"}}
	if v6 {
		s = append(s, [2]string{"net.ipv6.conf.all.forwarding", "1"})
		if uplink != "" {
			s = append(s, [2]string{"net.ipv6.conf." + uplink + ".accept_ra", "2"})
		}
	}
	return s
}

// enableForwarding sets the sysctls, recording each previous value first.
func (m *Manager) enableForwarding(h *hostRecord, uplink string, v6 bool) (changed bool, err error) {
	for _, kv := range forwarding(uplink, v6) {
		key, want := kv[0], kv[1]
		cur, err := m.Kernel.Sysctl(key)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // no IPv6 on this host, or no such interface
			}
			return changed, fmt.Errorf("reading sysctl %s: %w", key, err)
		}
		if cur == want || (want == "2" && cur != "1") {
			continue
		}
		if _, ok := h.Sysctls[key]; !ok {
			h.Sysctls[key] = cur
			if h.SysctlsSet == nil {
				h.SysctlsSet = map[string]string{}
			}
			h.SysctlsSet[key] = want
			if _, fwd := forwardingKeys[key]; fwd && m.Firewall != nil {
				needs, err := m.forwardNeedsOf(forwardingKeys[key])
				if err != nil {
					return changed, err
				}
				if h.ForwardNeeds == nil {
					h.ForwardNeeds = map[string][]string{}
				}
				h.ForwardNeeds[key] = needs
			}
			if err := writeJSON(m.hostRecordPath(), h); err != nil {
				return changed, err
			}
		}
		m.Log.Debug("setting sysctl", "key", key, "value", want, "was", cur)
		if err := m.Kernel.SetSysctl(key, want); err != nil {
			return changed, fmt.Errorf("setting sysctl %s=%s: %w", key, want, err)
		}
		changed = true
	}
	return changed, nil
}

// restoreHost puts back every sysctl nothing else has come to depend on
// (decideSysctls), deletes the iptables-nft tables nszone created that are
// empty again, removes every directory nszone created, then the record
// itself. Called when the last zone is gone. notes says, one line each,
// what it left and why.
func (m *Manager) restoreHost() (notes []string, err error) {
	h, err := m.readHostRecord()
	if err != nil {
		return nil, err
	}
	facts, err := m.sysctlFactsOf(h)
	if err != nil {
		return nil, err
	}
	restore, notes := decideSysctls(facts)
	var errs []error
	for _, kv := range restore {
		key, value := kv[0], kv[1]
		m.Log.Debug("restoring sysctl", "key", key, "value", value)
		if err := m.Kernel.SetSysctl(key, value); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restoring sysctl %s=%s: %w", key, value, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The tables go before the record: a crash in between leaves the
	// record, and the next down deletes what is still there.
	notes = append(notes, m.restoreTables(h)...)
	// The host record goes before the directories; RunDir itself goes
	// with the lock file when the lock is released.
	if err := removeFile(m.hostRecordPath()); err != nil {
		return nil, err
	}
	if err := removeFile(m.hostVouchPath()); err != nil {
		return nil, err
	}
	m.removeEmptyDirs()
	for i := len(h.CreatedDirs) - 1; i >= 0; i-- {
		d := h.CreatedDirs[i]
		if d == m.path(RunDir) {
			continue
		}
		_ = unix.Unmount(d, unix.MNT_DETACH) // /run/netns is a bind mount of itself, as iproute2 leaves it
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.Log.Warn("leaving directory in place", "dir", d, "err", err)
		}
	}
	return notes, nil
}
