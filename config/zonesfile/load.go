package zonesfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/nszone/nszone/config"
)

// DefaultPath is the system zones file, used when neither -c nor
// $NSZONE_CONFIG names one.
const DefaultPath = "/etc/nszone/zones.yaml"

// EnvVar names the environment variable that may point at a zones file.
const EnvVar = "NSZONE_CONFIG"

// systemPath is DefaultPath; tests point it elsewhere.
var systemPath = DefaultPath

// Locate picks the zones file: flagValue (-c) if set, else $NSZONE_CONFIG,
// else DefaultPath if it exists; otherwise builtin is true and path is ""
// (use Default). A file named by -c or the environment must exist: a typo
// there must not silently fall back to the built-in policy. For the same
// reason DefaultPath counts as present if anything is there at all (a
// dangling symlink, an unreadable directory); Load then says what is wrong.
func Locate(flagValue string) (path string, builtin bool, err error) {
	from := "-c"
	path = flagValue
	if path == "" {
		from, path = "$"+EnvVar, os.Getenv(EnvVar)
	}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", false, &config.Error{File: path, Msg: fmt.Sprintf("zones file given by %s: %s", from, reason(err)), Err: err}
		}
		return path, false, nil
	}
	switch _, err := os.Lstat(systemPath); {
	case err == nil:
		return systemPath, false, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", true, nil
	default:
		return "", false, &config.Error{File: systemPath, Msg: reason(err), Err: err}
	}
}

// Load reads and parses the zones file at path. It refuses anything but a
// regular file (a FIFO would block, a device never end) and files over
// MaxSize. Every error is a *Error.
func Load(path string) (*config.File, error) {
	fail := func(err error) (*config.File, error) {
		return nil, &config.Error{File: path, Msg: "cannot read zones file: " + reason(err), Err: err}
	}
	// Stat before open: opening a FIFO for reading blocks until a writer comes.
	st, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	if !st.Mode().IsRegular() {
		return nil, &config.Error{File: path, Msg: fmt.Sprintf("not a regular file (%s)", kind(st.Mode()))}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	// The path may have been replaced between Stat and Open.
	if st2, err := f.Stat(); err != nil {
		return fail(err)
	} else if !os.SameFile(st, st2) {
		return nil, &config.Error{File: path, Msg: "file changed while being opened"}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return fail(err)
	}
	if len(data) > MaxSize {
		return nil, &config.Error{File: path, Msg: fmt.Sprintf("file is larger than %d bytes (1 MiB)", MaxSize)}
	}
	return Parse(path, data)
}

// reason is an error's message without the path that *Error already prints.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err.Error()
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}
