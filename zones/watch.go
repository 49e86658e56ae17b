package zones

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// watchPIDPath is where a running nszone watch leaves its process id, so
// that exec knows a repair may be on its way.
func (m *Manager) watchPIDPath() string { return m.path(RunDir, "watch.pid") }

// MarkWatching records this process as the running nszone watch; the
// returned function takes the mark away again.
func (m *Manager) MarkWatching() (func(), error) {
	if err := os.MkdirAll(m.path(RunDir), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", m.path(RunDir), err)
	}
	if pid, ok := m.watcher(); ok && pid != os.Getpid() {
		return nil, fmt.Errorf("nszone watch already runs as process %d", pid)
	}
	if err := writeFileAtomic(m.watchPIDPath(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, err
	}
	return func() {
		if pid, _ := m.readWatchPID(); pid == os.Getpid() {
			os.Remove(m.watchPIDPath())
		}
	}, nil
}

// Watching reports whether an nszone watch is running.
func (m *Manager) Watching() bool {
	_, ok := m.watcher()
	return ok
}

// watcher returns the running watch's process id. A mark whose process is
// gone (killed with -9), or whose number now belongs to another program,
// does not count.
func (m *Manager) watcher() (int, bool) {
	pid, err := m.readWatchPID()
	if err != nil {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) < 2 || !strings.HasPrefix(filepath.Base(string(args[0])), "nszone") {
		return 0, false
	}
	for _, a := range args[1:] {
		if string(a) == "watch" {
			return pid, true
		}
	}
	return 0, false
}

func (m *Manager) readWatchPID() (int, error) {
	b, err := os.ReadFile(m.watchPIDPath())
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: not a process id: %w", m.watchPIDPath(), fs.ErrInvalid)
	}
	return pid, nil
}

// UpZones lists the zones that have a record: those up, or half made.
func (m *Manager) UpZones() ([]string, error) {
	_, names, err := m.records()
	return names, err
}
