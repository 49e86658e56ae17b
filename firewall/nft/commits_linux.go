package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Commits hears who commits to the calling thread's namespace's nf_tables
// rulesets: the kernel tells every listener of each transaction (NEWGEN:
// its generation, and the id of the thread that committed it). Opened
// before a writer reads, it says afterwards whether anyone else wrote in
// between.
type Commits struct {
	c    *netlink.Conn
	done chan struct{}

	mu   sync.Mutex
	by   map[uint32]int // generation -> the committing thread's id
	lost error          // why some notice may be missing
}

// commitsBuffer holds the notices of a large transaction (one per rule
// written) while the reader catches up.
const commitsBuffer = 8 << 20

// WatchCommits starts hearing the commits of the current namespace.
func WatchCommits() (*Commits, error) {
	c, err := dialIn(0)
	if err != nil {
		return nil, err
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return nil, fmt.Errorf("joining the nftables notification group: %w", err)
	}
	// Best effort: a lost notice fails By, and nobody is vouched for.
	if raw, err := c.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, commitsBuffer)
		})
	}
	w := &Commits{c: c, done: make(chan struct{}), by: map[uint32]int{}}
	go w.read()
	return w, nil
}

// read keeps each commit's committer until the socket is closed.
func (w *Commits) read() {
	defer close(w.done)
	for {
		msgs, err := w.c.Receive()
		if err != nil {
			w.mu.Lock()
			if w.lost == nil {
				w.lost = err
			}
			w.mu.Unlock()
			if errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return
		}
		for _, m := range msgs {
			if uint16(m.Header.Type) != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN || len(m.Data) < 4 {
				continue
			}
			gen, pid, err := decodeGen(m.Data[4:])
			w.mu.Lock()
			if err != nil && w.lost == nil {
				w.lost = err
			}
			if err == nil {
				w.by[gen] = pid
			}
			w.mu.Unlock()
		}
	}
}

// By returns the thread id that made each commit after generation from up
// to generation to, in order, and that of from itself when its notice came
// after hearing began: the kernel numbers a generation before all of its
// changes are in place, so a reader that saw from may have seen the rules
// before it. It fails when any notice was lost (the socket's buffer
// overflowed) or not all of them arrive within timeout: then nobody can say
// who made them.
func (w *Commits) By(from, to uint32, timeout time.Duration) ([]int, error) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		_, heard := w.by[to]
		lost := w.lost
		var out []int
		if pid, ok := w.by[from]; ok {
			out = append(out, pid)
		}
		if heard && lost == nil {
			for g := from + 1; g != to+1; g++ {
				if g == 0 {
					continue // the kernel skips it when the count wraps
				}
				pid, ok := w.by[g]
				if !ok {
					w.mu.Unlock()
					return nil, fmt.Errorf("hearing nftables commits: no notice of generation %d", g)
				}
				out = append(out, pid)
			}
		}
		w.mu.Unlock()
		switch {
		case lost != nil:
			return nil, fmt.Errorf("hearing nftables commits: %w", lost)
		case heard || from == to:
			return out, nil
		case time.Now().After(deadline):
			return nil, fmt.Errorf("hearing nftables commits: generation %d not heard within %s", to, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// decodeGen reads a NEWGEN notice: the generation and the committer's
// thread id.
func decodeGen(b []byte) (gen uint32, pid int, err error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, 0, err
	}
	ad.ByteOrder = binary.BigEndian
	pid = -1
	found := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_GEN_ID:
			gen, found = ad.Uint32(), true
		case unix.NFTA_GEN_PROC_PID:
			pid = int(ad.Uint32())
		}
	}
	if err := ad.Err(); err != nil {
		return 0, 0, err
	}
	if !found || pid < 0 {
		return 0, 0, errors.New("a notice without generation or committer")
	}
	return gen, pid, nil
}

// Close stops hearing.
func (w *Commits) Close() {
	w.c.Close()
	<-w.done
}
