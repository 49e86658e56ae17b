package firewall

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/coreos/go-iptables/iptables"
)

// IPTables is the kernel backend: iptables-save to read a table, one
// iptables-restore --noflush transaction to change it. It always uses one
// variant, nft or legacy, for both families: mixing them leaves two rule
// sets that each see only half of the policy.
type IPTables struct {
	Mode string // "nft" or "legacy"
	// Start starts the iptables commands; nil means cmd.Start. The zones
	// package sets it to start them inside a zone's network namespace.
	Start func(*exec.Cmd) error

	mu      sync.Mutex
	writers []int // see Writers
}

// Writers returns the process ids of the Restore commands run since the
// last call.
func (b *IPTables) Writers() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.writers
	b.writers = nil
	return w
}

// run runs cmd through Start.
func (b *IPTables) run(cmd *exec.Cmd) error {
	if uid := os.Getuid(); uid != 0 && os.Geteuid() == 0 {
		// Run by a setuid nszone-enter: xtables refuses to run with a
		// real uid that is not its effective one (exit 111), so the
		// command runs as root through and through, with no group of
		// the caller's.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}}
	}
	if b.Start == nil {
		return cmd.Run()
	}
	if err := b.Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

var _ Backend = (*IPTables)(nil)

// Variant is Mode, for code that holds a Backend.
func (b *IPTables) Variant() string { return b.Mode }

// EnvMode forces the variant ("nft" or "legacy"); tests use it.
const EnvMode = "NSZONE_IPTABLES"

// Detect picks the variant the host uses: the one the plain `iptables`
// command runs, unless only the other one holds rules (a host whose
// firewall was written by iptables-legacy while the alternative points at
// nft, or the reverse).
func Detect() (*IPTables, error) {
	if m := os.Getenv(EnvMode); m != "" {
		if m != "nft" && m != "legacy" {
			return nil, fmt.Errorf("%s=%q: want nft or legacy", EnvMode, m)
		}
		return checked(m)
	}
	ipt, err := iptables.New()
	if err != nil {
		return nil, fmt.Errorf("finding iptables (install the iptables package): %w", err)
	}
	mode, err := modeOf(ipt)
	if err != nil {
		return nil, err
	}
	other := map[string]string{"nft": "legacy", "legacy": "nft"}[mode]
	if inUse(other) && ruleCount(mode) == 0 && ruleCount(other) > 0 {
		mode = other
	}
	return checked(mode)
}

// modeOf tells the variant of the iptables command go-iptables found: by
// where its alternatives symlink leads (no process), else by its version
// text ("iptables v1.8.9 (nf_tables)").
func modeOf(ipt *iptables.IPTables) (string, error) {
	if v1, v2, v3 := ipt.GetIptablesVersion(); v1 == 0 && v2 == 0 && v3 == 0 {
		return "", fmt.Errorf("reading the iptables version: unknown")
	}
	if path, err := exec.LookPath("iptables"); err == nil {
		if target, err := filepath.EvalSymlinks(path); err == nil {
			switch base := filepath.Base(target); {
			case strings.Contains(base, "nft"):
				return "nft", nil
			case strings.Contains(base, "legacy"):
				return "legacy", nil
			}
		}
	}
	out, err := exec.Command("iptables", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("reading the iptables version: %w", err)
	}
	if strings.Contains(string(out), "legacy") {
		return "legacy", nil
	}
	return "nft", nil
}

// inUse avoids running iptables-legacy-save on a host that never loaded
// legacy tables: reading them would create them.
func inUse(mode string) bool {
	if mode != "legacy" {
		return true
	}
	b, err := os.ReadFile("/proc/net/ip_tables_names")
	return err == nil && len(bytes.TrimSpace(b)) > 0
}

func ruleCount(mode string) int {
	n := 0
	for _, f := range Families {
		out, err := exec.Command(binary(f, mode, "save")).Output()
		if err != nil {
			continue
		}
		n += strings.Count(string(out), "\n-A ")
	}
	return n
}

func checked(mode string) (*IPTables, error) {
	for _, f := range Families {
		for _, op := range []string{"save", "restore"} {
			if _, err := exec.LookPath(binary(f, mode, op)); err != nil {
				return nil, fmt.Errorf("iptables %s backend: %w (install the iptables package)", mode, err)
			}
		}
	}
	return &IPTables{Mode: mode}, nil
}

func binary(f Family, mode, op string) string {
	name := "iptables"
	if f == IPv6 {
		name = "ip6tables"
	}
	return name + "-" + mode + "-" + op
}

// Save implements Backend: one table with -t, several in one dump.
func (b *IPTables) Save(f Family, tables []string) (string, error) {
	var args []string
	if len(tables) == 1 {
		args = []string{"-t", tables[0]}
	}
	cmd := exec.Command(binary(f, b.Mode, "save"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := b.run(cmd); err != nil {
		return "", fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Restore implements Backend.
func (b *IPTables) Restore(f Family, script string) error {
	cmd := exec.Command(binary(f, b.Mode, "restore"), "--noflush", "--wait")
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := b.run(cmd)
	if cmd.Process != nil {
		b.mu.Lock()
		b.writers = append(b.writers, cmd.Process.Pid)
		b.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
