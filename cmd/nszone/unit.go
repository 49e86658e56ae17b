package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/zones"
)

// unitNameRE is a systemd service name nszone writes drop-ins for: a unit
// name of systemd's character set (templates and instances included), no
// path, at most 255 bytes with ".service". The suffix is optional.
var unitNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+$`) })

// nszoneUnit is the unit that brings the zones up at boot (dist/nszone.service).
const nszoneUnit = "nszone.service"

func unitCmd(o *options) *cobra.Command {
	var outDir string
	c := &cobra.Command{
		Use:   "unit [-c FILE] [--output DIR] ZONE SERVICE",
		Short: "Write a systemd drop-in that runs SERVICE inside ZONE",
		Long: `Write DIR/SERVICE.d/nszone-ZONE.conf (DIR: /etc/systemd/system), a drop-in that runs
the service in the zone's network namespace (NetworkNamespacePath=/run/netns/ZONE),
with the zone's resolv.conf and nsswitch.conf over the host's and the host's resolver
sockets hidden, ordered after nszone.service, which brings the zones up. A zone with
confine: desktop or strict (the default is desktop) also gives the service a private
/tmp, no other users' processes in /proc, and no reach to the host's unix sockets (the
user sessions' runtime directories, the system bus, Docker's).
Then: systemctl daemon-reload && systemctl restart SERVICE.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("unit: usage: nszone unit [-c FILE] [--output DIR] ZONE SERVICE")
			}
			zone, service := args[0], args[1]
			service, err := serviceName(service)
			if err != nil {
				return err
			}
			f, err := loadConfig(o)
			if err != nil {
				return err
			}
			if f.Zone(zone) == nil {
				path := f.Path
				if path == "" {
					path = "built-in default"
				}
				return &zones.UnknownZoneError{Zone: zone, File: path}
			}
			dir := filepath.Join(outDir, service+".d")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("writing the drop-in for %s: %w", service, err)
			}
			p := filepath.Join(dir, "nszone-"+zone+".conf")
			if err := writeUnitFile(p, []byte(unitDropIn(zone, f.Zone(zone).Access.ConfineOr()))); err != nil {
				return fmt.Errorf("writing the drop-in for %s: %w", service, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", p)
			if outDir == "/etc/systemd/system" {
				fmt.Fprintf(cmd.OutOrStdout(), "now: systemctl daemon-reload && systemctl restart %s\n", service)
			}
			return nil
		},
	}
	addConfigFlag(c, o)
	c.Flags().StringVar(&outDir, "output", "/etc/systemd/system", "directory of systemd units to write the drop-in into")
	return c
}

// serviceName checks a service name and gives it its .service suffix.
func serviceName(s string) (string, error) {
	if !unitNameRE().MatchString(s) {
		return "", usagef("unit: %q is not a valid service name", s)
	}
	if !strings.Contains(s, ".") || strings.HasSuffix(s, "@") {
		s += ".service"
	}
	if !strings.HasSuffix(s, ".service") {
		return "", usagef("unit: %q is not a service (want NAME or NAME.service)", s)
	}
	base := strings.TrimSuffix(s, ".service")
	if base == "" || len(s) > 255 || strings.HasPrefix(base, "-") || strings.HasPrefix(base, ".") ||
		strings.Count(base, "@") > 1 || base == "nszone" {
		return "", usagef("unit: %q is not a valid service name", s)
	}
	return s, nil
}

// unitDropIn is the drop-in's text for zone with its confinement.
// BindReadOnlyPaths binds onto the path itself; a missing zone file fails
// the service (no "-" prefix): a service in a zone must not silently use
// the host's DNS.
//
// A confined zone (desktop or strict: a service has no desktop, so both are
// one here) gets what systemd offers of exec's confinement: a private /tmp
// and /var/tmp, no process of other users in /proc (PrivatePIDs=, a PID
// namespace of its own, comes with systemd 257: commented until the host
// has it), and the host's unix sockets out of reach: the user sessions'
// runtime directories (their buses and agents), the system bus, Docker's
// and containerd's. A service that needs one of them takes confine: none.
func unitDropIn(zone, confine string) string {
	hidden := "-/run/nscd -/run/systemd/resolve"
	extra := ""
	if confine != config.ConfineNone {
		hidden += " -/run/user -/run/dbus -/run/docker.sock -/var/run/docker.sock -/run/containerd -/run/podman"
		extra = `# confine: ` + confine + ` (nszone exec's confinement, as far as systemd offers it)
PrivateTmp=yes
ProtectProc=invisible
#PrivatePIDs=yes   # systemd 257 and later: a PID namespace and /proc of its own
`
	}
	return fmt.Sprintf(`# Written by nszone unit: runs this service inside zone %[1]s.
# Remove this file (and systemctl daemon-reload) to take it out again.
[Unit]
After=%[2]s
Requires=%[2]s

[Service]
NetworkNamespacePath=/run/netns/%[1]s
BindReadOnlyPaths=/etc/netns/%[1]s/resolv.conf:/etc/resolv.conf
BindReadOnlyPaths=/etc/netns/%[1]s/nsswitch.conf:/etc/nsswitch.conf
InaccessiblePaths=%[3]s
%[4]s`, zone, nszoneUnit, hidden, extra)
}

// writeUnitFile writes p through a temporary file and a rename.
func writeUnitFile(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".nszone-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}
