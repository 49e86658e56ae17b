package zones

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/internal/atomicfile"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// Record is what nszone knows of a zone it created. It is written before
// anything of the zone exists in the kernel, so a crash leaves a record that
// points at every leftover. On disk it is storedRecord (schema.go); the
// json names here are those of version 0 (recordV0).
type Record struct {
	Name     string         `json:"name"`
	Netns    netns.NsID     `json:"netns"`
	Pair     veth.Pair      `json:"pair"`
	Policy   firewall.Zone  `json:"policy"`
	Allow    []string       `json:"allow"`
	DNS      []string       `json:"dns"`
	Openings []string       `json:"dns_openings,omitempty"`
	IPv6     bool           `json:"ipv6"`
	LAN      []netip.Prefix `json:"lan"` // what "lan" meant when the zone was last converged
	// Access is who may enter without sudo, as the zone was last brought
	// up: nszone-enter reads it here, in root's /run, never in a zones file.
	Access config.Access `json:"access"`
}

// Allocation is a zone's link subnets; kept across reboots so a zone gets
// the same addresses every time.
type Allocation struct {
	Subnet4 string `json:"subnet4"`
	Subnet6 string `json:"subnet6,omitempty"`
}

func (m *Manager) recordPath(zone string) string { return m.path(RunDir, "zones", zone+".json") }
func (m *Manager) allocPath(zone string) string  { return m.path(StateDir, "zones", zone+".json") }

// writeJSON writes v atomically, as writeFileAtomic.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600, true)
}

// writeFileAtomic writes content to path with mode perm, as atomicfile
// does, without waiting for the disk: for files up writes again anyway.
func writeFileAtomic(path string, content []byte, perm os.FileMode) error {
	return atomicfile.Write(path, content, perm, false)
}

// readJSON reads path into v; a missing file returns an error wrapping fs.ErrNotExist.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}

// records returns every zone record, sorted by name.
func (m *Manager) records() (map[string]*Record, []string, error) {
	dir := m.path(RunDir, "zones")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading records in %s: %w", dir, err)
	}
	recs := map[string]*Record{}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		var r Record
		if err := readJSON(filepath.Join(dir, e.Name()), &r); err != nil {
			return nil, nil, err
		}
		recs[name] = &r
		names = append(names, name)
	}
	sort.Strings(names)
	return recs, names, nil
}

func (m *Manager) allocation(zone string) (Allocation, bool) {
	var a Allocation
	if err := readJSON(m.allocPath(zone), &a); err != nil {
		return Allocation{}, false
	}
	return a, true
}

// removeEmptyDirs removes nszone's own subdirectories once nothing is left
// in them; the top directories go only if nszone created them (hostRecord).
func (m *Manager) removeEmptyDirs() {
	for _, d := range []string{m.path(RunDir, "zones"), m.path(RunDir, "vouch"), m.path(StateDir, "zones")} {
		atomicfile.RemoveTemps(d)
		os.Remove(d) // fails, as it should, while anything is left
	}
}
