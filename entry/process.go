package entry

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseOnExec marks every descriptor above 2 close-on-exec: the caller's
// open files reach neither a program run as root nor, as with sudo, the
// program. close_range(2) does it at once from Linux 5.11; before that,
// each descriptor in /proc/self/fd.
func CloseOnExec() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return closeOnExecEach()
}

func closeOnExecEach() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		// The directory's own descriptor is gone already: EBADF is fine.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("descriptor %d: %w", fd, err)
		}
	}
	return nil
}

// MinFreeFiles is how many descriptors nszone-enter must be able to open
// besides those it was started with. The heaviest entry measured (a
// desktop-confined zone with the session bus, display and sound sockets
// passed in, on an iptables-legacy host) needed 19; this is twice that and
// some, and far below any limit a system sets (1024 by default).
const MinFreeFiles = 40

// EnoughFiles fails, in words, unless this process may open MinFreeFiles
// more descriptors under its RLIMIT_NOFILE (whose soft limit the Go runtime
// has raised to the hard one already). With fewer, the readiness check
// would fail half way on a socket or a file it cannot open, and say the
// zone is degraded, or that no zone is up, instead of what is wrong.
func EnoughFiles() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("too few open files: your limit (ulimit -n) is %d, and nszone-enter needs %d more than it is started with (%w)", lim.Cur, MinFreeFiles, err)
	}
	open := uint64(0) // those below the limit, which take its places
	for _, e := range entries {
		if fd, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && fd < lim.Cur {
			open++
		}
	}
	open-- // the directory's own, closed again
	if lim.Cur < open+MinFreeFiles {
		return fmt.Errorf("too few open files: your limit (ulimit -n) is %d, %d are open, and nszone-enter needs %d more: raise ulimit -n", lim.Cur, open, MinFreeFiles)
	}
	return nil
}
