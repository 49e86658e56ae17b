package refusals

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Ring keeps the recent entries in two files of JSON lines in Dir, the
// current one and the one before it: when the current one would grow past
// half of Max, it becomes the one before, replacing that. The two never
// hold more than Max bytes together, whatever a flood does.
type Ring struct {
	Dir string
	Max int64
}

// DefaultMax keeps some thousands of entries (one is about 200 bytes).
const DefaultMax = 1 << 20

const (
	current  = "refused.jsonl"
	previous = "refused.jsonl.1"
	lockName = "lock"
)

// lock takes the ring's lock: collectors in several processes (watch, log
// -f) may append at once, and a reader must not see half a rotation.
func (r *Ring) lock(how int) (func(), error) {
	if err := os.MkdirAll(r.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating %s: %w", r.Dir, err)
	}
	f, err := os.OpenFile(filepath.Join(r.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the log's lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the log: %w", err)
	}
	return func() { f.Close() }, nil
}

// Append adds entries at the end, rotating first when they would not fit.
func (r *Ring) Append(es []Entry) error {
	var buf bytes.Buffer
	for _, e := range es {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("writing the log: %w", err)
		}
		buf.Write(append(b, '\n'))
	}
	unlock, err := r.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(r.Dir, current)
	if fi, err := os.Stat(path); err == nil && fi.Size()+int64(buf.Len()) > r.Max/2 {
		if err := os.Rename(path, filepath.Join(r.Dir, previous)); err != nil {
			return fmt.Errorf("rotating the log: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening the log: %w", err)
	}
	b := buf.Bytes()
	for int64(len(b)) > r.Max/2 { // more than fits at all: the newest that do
		_, b, _ = bytes.Cut(b, []byte{'\n'})
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the log: %w", err)
	}
	return nil
}

// Read returns every entry the ring holds, oldest first.
func (r *Ring) Read() ([]Entry, error) {
	files, err := r.open()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, f := range files {
		if f != nil {
			out = append(out, readLines(bufio.NewReader(f), nil)...)
			f.Close()
		}
	}
	return out, nil
}

// open opens the previous and the current file (nil when missing) at one
// moment: no rotation between the two.
func (r *Ring) open() ([2]*os.File, error) {
	var files [2]*os.File
	if _, err := os.Stat(r.Dir); errors.Is(err, fs.ErrNotExist) {
		return files, nil // nothing logged yet; a reader makes no directory
	}
	unlock, err := r.lock(unix.LOCK_SH)
	if err != nil {
		return files, err
	}
	defer unlock()
	for i, name := range []string{previous, current} {
		f, err := os.Open(filepath.Join(r.Dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			for _, f := range files {
				if f != nil {
					f.Close()
				}
			}
			return [2]*os.File{}, fmt.Errorf("reading the log: %w", err)
		}
		if err == nil {
			files[i] = f
		}
	}
	return files, nil
}

// readLines parses the whole lines of rd; a partial last line (being
// written) is left in partial's place: the caller passes it back in.
func readLines(rd *bufio.Reader, partial *[]byte) []Entry {
	var out []Entry
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			if partial != nil {
				*partial = append(*partial, line...)
			}
			return out
		}
		if partial != nil && len(*partial) > 0 {
			line = append(*partial, line...)
			*partial = nil
		}
		var e Entry
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
}

// Follow calls emit with every entry the ring holds, oldest first, then
// with each entry appended after, until ctx ends. It follows the current
// file across rotations, as tail -F does, checking every poll.
func (r *Ring) Follow(ctx context.Context, poll time.Duration, emit func(Entry)) error {
	files, err := r.open()
	if err != nil {
		return err
	}
	if prev := files[0]; prev != nil {
		for _, e := range readLines(bufio.NewReader(prev), nil) {
			emit(e)
		}
		prev.Close()
	}
	path := filepath.Join(r.Dir, current)
	f := files[1]
	var rd *bufio.Reader
	if f != nil {
		rd = bufio.NewReader(f)
	}
	var partial []byte
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if f == nil {
			var err error
			if f, err = os.Open(path); err == nil {
				rd, partial = bufio.NewReader(f), nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("reading the log: %w", err)
			}
		}
		if f != nil {
			for _, e := range readLines(rd, &partial) {
				emit(e)
			}
			// Rotated: what was written before the rename has been read;
			// the new file is read from its start.
			if now, err := os.Stat(path); err == nil && !sameFile(f, now) {
				for _, e := range readLines(rd, &partial) {
					emit(e)
				}
				f.Close()
				f = nil
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

func sameFile(f *os.File, fi os.FileInfo) bool {
	have, err := f.Stat()
	if err != nil {
		return false
	}
	a, ok1 := have.Sys().(*syscall.Stat_t)
	b, ok2 := fi.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Ino == b.Ino && a.Dev == b.Dev
}
