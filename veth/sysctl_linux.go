package veth

import (
	"fmt"
	"os"
	"strings"

	"github.com/nszone/nszone/netns"
)

// readSysctl and writeSysctl act on the namespace of the calling thread.
func readSysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0) // no O_CREATE: a missing key is an error
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("setting sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// GetSysctl reads a sysctl of the current network namespace, e.g.
// "net.ipv4.ip_forward". A key with a slash is a path under /proc/sys.
func GetSysctl(key string) (string, error) { return readSysctl(key) }

// SetSysctl writes a sysctl of the current network namespace; a key that does
// not exist gives an error wrapping fs.ErrNotExist.
func SetSysctl(key, value string) error { return writeSysctl(key, value) }

// GetSysctlIn reads a sysctl inside the namespace pinned at netns.PinDir/name.
func GetSysctlIn(name, key string) (value string, err error) {
	err = netns.RunIn(name, func() (err error) {
		value, err = readSysctl(key)
		return err
	})
	return value, err
}

// SetSysctlIn writes a sysctl inside the namespace pinned at netns.PinDir/name.
func SetSysctlIn(name, key, value string) error {
	return netns.RunIn(name, func() error { return writeSysctl(key, value) })
}
