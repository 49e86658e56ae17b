package entry

import (
	"errors"
	"fmt"
	"log/syslog"
	"strings"
)

// SyslogSockets are tried in order: the syslog socket, then journald's own
// (where /dev/log is missing or not yet linked to it).
var SyslogSockets = []string{"/dev/log", "/run/systemd/journal/dev-log"}

// Audit writes one line per entry and per refusal to syslog, facility
// authpriv, as sudo and su do.
type Audit struct{ w *syslog.Writer }

// OpenAudit connects to the first of SyslogSockets that answers. Entry is
// refused without it: every entry must be logged.
func OpenAudit() (*Audit, error) {
	var errs []error
	for _, path := range SyslogSockets {
		for _, network := range []string{"unixgram", "unix"} {
			w, err := syslog.Dial(network, path, syslog.LOG_AUTHPRIV|syslog.LOG_NOTICE, "nszone-enter")
			if err == nil {
				return &Audit{w}, nil
			}
			if network == "unix" {
				errs = append(errs, err)
			}
		}
	}
	return nil, fmt.Errorf("cannot log to syslog (tried %s): %w", strings.Join(SyslogSockets, ", "), errors.Join(errs...))
}

// Every value a caller could shape is quoted (%q), so that no name, path or
// zone argument can start a line of its own in the log.

// Entered logs that c starts program (absolute path, argument count) in zone.
func (a *Audit) Entered(c Caller, zone, program string, argc int) error {
	return a.w.Notice(fmt.Sprintf("entered: user=%q uid=%d zone=%q program=%q args=%d", c.Name, c.UID, zone, program, argc))
}

// Refused logs that c was not let into zone, and why.
func (a *Audit) Refused(c Caller, zone string, why error) error {
	return a.w.Warning(fmt.Sprintf("refused: user=%q uid=%d zone=%q reason=%q", c.Name, c.UID, zone, why.Error()))
}

// Failed logs that a logged entry did not start its program after all.
func (a *Audit) Failed(c Caller, zone string, why error) error {
	return a.w.Warning(fmt.Sprintf("failed: user=%q uid=%d zone=%q reason=%q", c.Name, c.UID, zone, why.Error()))
}
