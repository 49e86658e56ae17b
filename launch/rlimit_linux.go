package launch

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// withSignalsQueued runs change, which sets credentials on every thread of
// the process. Go does that (syscall.Setresuid and its kin, without cgo)
// from a signal handler on each other thread, the signal sent with
// tgkill(2) as a realtime one, which the kernel refuses beyond the
// receiver's RLIMIT_SIGPENDING (the caller's `ulimit -i 0` is inherited
// through setuid): the runtime then waits for ever, busy, the calling
// thread switched and the others still root. So the limit is lifted for the
// change, which root may do (without CAP_SYS_RESOURCE, in some containers,
// only the soft limit up to the hard one), the change is refused when the
// limit still leaves too few signals, and the limit is put back right after
// the change, which anyone may do: the program gets the caller's limit.
func withSignalsQueued(change func() error) error {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_SIGPENDING, &old); err != nil {
		return fmt.Errorf("reading RLIMIT_SIGPENDING: %w", err)
	}
	restore := func() error { return nil }
	if old.Cur != unix.RLIM_INFINITY {
		lifted := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
		if err := unix.Setrlimit(unix.RLIMIT_SIGPENDING, &lifted); err != nil {
			lifted = unix.Rlimit{Cur: old.Max, Max: old.Max}
			if err := unix.Setrlimit(unix.RLIMIT_SIGPENDING, &lifted); err != nil {
				return fmt.Errorf("raising RLIMIT_SIGPENDING (ulimit -i) for the change of user: %w", err)
			}
		}
		restore = func() error { return unix.Setrlimit(unix.RLIMIT_SIGPENDING, &old) }
	}
	err := signalsQueueable()
	if err == nil {
		err = change()
	}
	if rerr := restore(); rerr != nil && err == nil {
		err = fmt.Errorf("restoring RLIMIT_SIGPENDING (ulimit -i) after the change of user: %w", rerr)
	}
	return err
}

// signalsQueueable fails unless every thread of this process can be sent
// one more signal: SigQ in /proc/self/status is the signals queued for the
// real user and the limit.
func signalsQueueable() error {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return fmt.Errorf("checking RLIMIT_SIGPENDING: %w", err)
	}
	defer f.Close()
	var threads, queued, limit uint64
	found := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Threads":
			threads, err = strconv.ParseUint(v, 10, 64)
			found++
		case "SigQ":
			q, l, _ := strings.Cut(v, "/")
			if queued, err = strconv.ParseUint(q, 10, 64); err == nil {
				limit, err = strconv.ParseUint(l, 10, 64)
			}
			found++
		}
		if err != nil {
			return fmt.Errorf("checking RLIMIT_SIGPENDING: bad line %q in /proc/self/status", s.Text())
		}
	}
	if err := s.Err(); err != nil || found != 2 {
		return fmt.Errorf("checking RLIMIT_SIGPENDING: no Threads and SigQ in /proc/self/status (%v)", err)
	}
	if queued+threads > limit {
		return fmt.Errorf("cannot change user: that signals each of the %d threads of this process, and RLIMIT_SIGPENDING (ulimit -i) allows %d queued signals, %d of them queued already: raise ulimit -i", threads, limit, queued)
	}
	return nil
}
