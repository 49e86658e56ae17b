package launch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
)

// mustBind are the zone files that decide where DNS goes: unlike other
// entries of the zone's directory they are never skipped.
var mustBind = map[string]bool{"resolv.conf": true, "nsswitch.conf": true}

// Exec replaces the current process with o.Argv run inside the zone. It
// returns only on failure, always with an *ExitError.
//
// The work happens on a fresh goroutine locked to its OS thread and never
// unlocked: the namespace switches are per thread, and if anything fails the
// runtime destroys that thread when the goroutine exits, so no other
// goroutine ever runs in the zone. Credentials, however, change for the whole
// process (setresuid acts on all threads): after a failure the caller must
// exit with Code and do nothing else.
func Exec(o Options) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- run(o)
	}()
	return <-errc
}

func run(o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(o.Argv) == 0 || o.Argv[0] == "" {
		return setupErr(errors.New("no program to run"))
	}

	// 1. Whom to run as (looked up by the caller, before anything is
	// entered).
	id := o.As
	if id != nil && id.UID == os.Geteuid() && id.GID == os.Getegid() {
		id = nil // already that user: nothing to drop, environment unchanged
	}
	if id != nil {
		// The change of user needs a signal per thread: refused here,
		// before anything is entered or started, when the caller's
		// RLIMIT_SIGPENDING leaves too few (withSignalsQueued).
		if err := withSignalsQueued(func() error { return nil }); err != nil {
			return setupErr(err)
		}
	}
	// 1b. A single-instance program running outside the zone would take
	// the launch over: refuse, unless a separate instance is asked for.
	zone := filepath.Base(o.NetnsPath)
	si := LookupSingleInstance(o.Argv[0])
	if o.Profile && si == nil {
		return setupErr(fmt.Errorf("--profile: %s is not a program nszone knows how to run as a separate instance (known: %s)", o.Argv[0], knownSingleInstances()))
	}
	if si != nil && !o.Profile && !si.IsSeparate(o.Argv[1:]) {
		uid := os.Getuid()
		if id != nil {
			uid = id.UID
		}
		procRoot := o.ProcRoot
		if procRoot == "" {
			procRoot = "/proc"
		}
		found, err := FindOutside(procRoot, si, uid, o.NetnsPath)
		if err != nil {
			return setupErr(err)
		}
		if len(found) > 0 {
			return setupErr(errors.New(refuseMessage(si, filepath.Base(o.Argv[0]), zone, found)))
		}
	}
	// The zone's init, opened while its path still names it.
	var initBin *os.File
	if o.Confine == ConfineDesktop || o.Confine == ConfineStrict {
		f, err := openInit(o.Init)
		if err != nil {
			return setupErr(err)
		}
		defer f.Close()
		initBin = f
	}
	// The path, not the directory: it is looked up again in the new mount
	// namespace and with the target user's permissions.
	cwd, _ := os.Getwd()

	// 2. The zone's network.
	if err := netns.Enter(o.NetnsPath); err != nil {
		return setupErr(err)
	}
	log.Debug("entered network namespace", "netns", o.NetnsPath)

	// 2b. In a confined zone the session bus is reached only through a
	// filtering proxy, started here, in the host's mount namespace, where
	// the real bus stays in sight of it.
	confined := o.Confine == ConfineDesktop || o.Confine == ConfineStrict
	var proxy *busProxy
	if o.Confine == ConfineDesktop {
		var (
			warn string
			err  error
		)
		proxy, warn, err = startBusProxy(o, id, zone)
		if err != nil {
			return setupErr(err)
		}
		if warn != "" {
			o.warn(warn)
		}
		defer proxy.unlink() // on a failure before the init starts
	}

	// 3. A mount namespace of our own. Slave, not private: host mounts made
	// later (a USB stick, an NFS automount) still appear, ours never leak out.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return setupErr(fmt.Errorf("creating a mount namespace: %w", err))
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return setupErr(fmt.Errorf("making the mount namespace a slave of the host's: %w", err))
	}

	// 4. /sys as seen from the zone.
	if err := remountSys(filepath.Base(o.NetnsPath)); err != nil {
		return setupErr(err)
	}
	log.Debug("mounted sysfs of the zone on /sys")

	// 5. The zone's /etc files, 6. no host resolver sockets.
	bound, err := bindEtc(o.EtcDir, log)
	if err != nil {
		return setupErr(err)
	}
	if err := hide(o.Hide, log); err != nil {
		return setupErr(err)
	}
	// Fail closed if a hidden directory or an odd symlink left any /etc
	// entry (resolv.conf above all) showing something else than the zone's.
	for _, name := range bound {
		if err := sameFile(filepath.Join(o.EtcDir, name), filepath.Join("/etc", name)); err != nil {
			return setupErr(err)
		}
	}

	if o.Recheck != nil {
		if err := o.Recheck(); err != nil {
			return setupErr(err)
		}
	}
	if confined {
		// 6b. What else a confined program sees: a private /tmp and /run
		// (after the recheck, which reads nszone's records in /run).
		if err := confineFS(o, id, proxy); err != nil {
			return setupErr(err)
		}
		log.Debug("confined", "confine", o.Confine)
		// The rest runs in the zone's own PID namespace: its first process
		// (Options.Init, as nszone-init) mounts its /proc, becomes the
		// user and starts the program; this one waits for it.
		return spawnInit(o, id, cwd, proxy, initBin)
	}
	return finish(o, id, si, cwd, nil)
}

// finish becomes the user and runs the program: by execve(2), replacing this
// process, or (init != nil: the init of a confined zone) as its child,
// waited for.
func finish(o Options, id *Identity, si *SingleInstance, cwd string, init *initProc) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zone := filepath.Base(o.NetnsPath)

	// 7. Become the user. PR_SET_NO_NEW_PRIVS only when the zone asks for
	// it: it also breaks sudo, ping and other setuid programs inside the
	// zone, which users expect to work like outside it.
	if id != nil {
		if err := dropPrivileges(id); err != nil {
			return setupErr(err)
		}
		log.Debug("dropped privileges", "uid", id.UID, "gid", id.GID, "groups", id.Groups)
	}
	if o.NoNewPrivs {
		// Per thread, and this thread is the one that calls execve.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return setupErr(fmt.Errorf("setting no_new_privs: %w", err))
		}
	}

	// 8. Environment, with the desktop session's sockets in their path
	// forms; 9. working directory, program.
	env := o.Env
	if init == nil {
		env = buildEnv(o.Env, id)
	}
	home := Getenv(env, "HOME")
	env, warnings := DesktopEnv(env, Desktop{UID: os.Getuid(), Home: home})
	for _, l := range warnings {
		o.warn(l)
	}
	argv := o.Argv
	if o.Profile {
		// As the user, never as root: HOME is a path the user controls.
		dir := ProfileDir(home, zone, si.Name)
		if home == "" || !filepath.IsAbs(home) {
			return setupErr(fmt.Errorf("--profile: no usable HOME (%q) for the profile directory", home))
		}
		// The directory is made by whoever runs the program, in a HOME that
		// must be theirs: root must not follow the symlinks of another
		// user's HOME.
		if st, err := os.Stat(home); err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
			return setupErr(fmt.Errorf("--profile: HOME %s is not owned by the user who runs the program; run through sudo as that user, or pass --user", home))
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return setupErr(fmt.Errorf("--profile: creating the profile directory: %w", err))
		}
		argv = append(append([]string{o.Argv[0]}, si.ProfileArgs(dir)...), o.Argv[1:]...)
		log.Debug("separate instance", "program", si.Name, "profile", dir)
	}
	dir, err := chdir(o.Dir, cwd, home)
	if err != nil {
		return setupErr(err)
	}
	if dir != cwd {
		log.Debug("working directory changed", "from", cwd, "to", dir)
	}
	if Getenv(env, "PWD") != "" {
		if !filepath.IsAbs(dir) {
			dir, _ = unix.Getwd()
		}
		env = setenv(env, "PWD", dir) // shells trust a PWD that names the directory
	}
	name := o.Argv[0]
	path, err := lookPath(name, Getenv(env, "PATH"))
	if err != nil {
		return &ExitError{Code: exitCode(err), Err: fmt.Errorf("exec %q: %w", name, err)}
	}
	if o.Audit != nil {
		abs := path
		if wd, err := unix.Getwd(); err == nil && !filepath.IsAbs(abs) {
			abs = filepath.Join(wd, abs)
		}
		if err := o.Audit(abs, argv); err != nil {
			return setupErr(err)
		}
	}
	log.Debug("executing", "path", path, "argv", argv)
	if init != nil {
		return init.run(path, argv, env)
	}
	err = unix.Exec(path, argv, env)
	return execFailed(name, path, err)
}

// execFailed is the ExitError for a program that execve(2) did not start.
func execFailed(name, path string, err error) *ExitError {
	code := exitCode(err)
	if code == ExitNotFound {
		if _, serr := os.Stat(path); serr == nil {
			// execve says ENOENT for a file that is there when its #!
			// interpreter or ELF loader is missing: found, cannot run.
			code, err = ExitCannotRun, fmt.Errorf("%w (missing interpreter?)", err)
		}
	}
	return &ExitError{Code: code, Err: fmt.Errorf("exec %q: %w", name, err)}
}

func knownSingleInstances() string {
	var names []string
	for _, s := range SingleInstances {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func setupErr(err error) *ExitError { return &ExitError{Code: ExitSetup, Err: err} }

// remountSys replaces /sys by a sysfs mounted from inside the zone, which
// lists the zone's interfaces, as `ip netns exec` does. Mounts below /sys
// (cgroups, debugfs...) go with the old one.
func remountSys(source string) error {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		// Not a mount point: cover it instead. A read-only /sys
		// cannot be covered by a read-write one.
		var st unix.Statfs_t
		if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
			flags |= unix.MS_RDONLY
		}
	}
	if err := unix.Mount(source, "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mounting the zone's sysfs on /sys: %w", err)
	}
	return nil
}

// bindEtc binds each entry of dir over /etc/ENTRY (iproute2's bind_etc) and
// returns the names it bound. An entry whose /etc counterpart does not
// exist is skipped, since nszone never creates files in the host's /etc;
// for resolv.conf and nsswitch.conf that is an error instead.
func bindEtc(dir string, log *slog.Logger) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the zone's files: %w", err)
	}
	var bound []string
	for _, e := range entries {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		_, err := os.Lstat(dst)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !mustBind[e.Name()]:
			log.Warn("zone file skipped: nothing to cover in /etc", "file", src, "target", dst)
			continue
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("binding %s: the host has no %s to cover (nszone does not create files in /etc)", src, dst)
		case err != nil:
			return nil, fmt.Errorf("binding %s over %s: %w", src, dst, err)
		}
		if err := bindOver(src, dst); err != nil {
			return nil, fmt.Errorf("binding %s over %s: %w", src, dst, err)
		}
		log.Debug("bound zone file", "file", src, "target", dst)
		bound = append(bound, e.Name())
	}
	return bound, nil
}

// bindOver bind-mounts src on dst without following dst if it is a
// symlink. That matters for resolv.conf, often a symlink into
// /run/systemd/resolve or /run/NetworkManager: mount(2) would bind over the
// link's target, which can be missing (resolved stopped: the bind fails) or
// lie in a directory hide then covers (the zone sees no resolv.conf at all).
// Mounted on the link itself, /etc/resolv.conf shows the zone's file
// whatever the link points to, and the target is left alone. Kernels older
// than 5.2 lack open_tree/move_mount: there mount(2) follows the link, and
// the check after hide refuses a result that is not the zone's file.
func bindOver(src, dst string) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return unix.Mount(src, dst, "", unix.MS_BIND, "")
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH)
}

// hide covers each existing directory in dirs with an empty read-only tmpfs.
func hide(dirs []string, log *slog.Logger) error {
	done := map[string]bool{}
	for _, d := range dirs {
		real, err := filepath.EvalSymlinks(d) // /var/run/nscd and /run/nscd are often one
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hiding %s: %w", d, err)
		}
		if fi, err := os.Stat(real); err != nil || !fi.IsDir() || done[real] {
			log.Debug("not hidden: not a directory, or hidden already", "path", d)
			continue
		}
		const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
		if err := unix.Mount("nszone-hide", real, "tmpfs", flags, "mode=0755,size=4k"); err != nil {
			return fmt.Errorf("hiding %s: %w", real, err)
		}
		done[real] = true
		log.Debug("hid directory", "dir", real)
	}
	return nil
}

// sameFile fails unless path now shows the zone's file want.
func sameFile(want, path string) error {
	var a, b unix.Stat_t
	if err := unix.Stat(want, &a); err != nil {
		return fmt.Errorf("checking %s: %w", want, err)
	}
	if err := unix.Stat(path, &b); err != nil {
		return fmt.Errorf("checking that %s shows %s: %w", path, want, err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return fmt.Errorf("checking that %s shows %s: it shows another file", path, want)
	}
	return nil
}

// dropPrivileges switches to id and proves that no capability is left.
func dropPrivileges(id *Identity) error {
	// Ambient and inheritable sets survive setresuid; either could hand
	// capabilities to the program at execve.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing ambient capabilities: %w", err) // EINVAL: kernel without ambient capabilities
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clearing inheritable capabilities: %w", err)
	}
	// syscall's versions act on every thread of the process (x/sys/unix's
	// Setgroups only on the calling one), by signals the caller's
	// RLIMIT_SIGPENDING must not block.
	err := withSignalsQueued(func() error {
		if err := syscall.Setgroups(id.Groups); err != nil {
			return fmt.Errorf("setting the groups of %s: %w", id.Name, err)
		}
		if err := syscall.Setresgid(id.GID, id.GID, id.GID); err != nil {
			return fmt.Errorf("setting gid %d: %w", id.GID, err)
		}
		if err := syscall.Setresuid(id.UID, id.UID, id.UID); err != nil {
			return fmt.Errorf("setting uid %d of %s: %w", id.UID, id.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if id.UID == 0 {
		return nil // root keeps its capabilities by definition
	}
	return noCapabilities()
}

// noCapabilities fails unless this thread's capability sets are all empty.
// The kernel clears them on the switch away from uid 0, unless securebits
// (SECBIT_KEEP_CAPS, SECBIT_NO_SETUID_FIXUP) set by our parent say otherwise.
func noCapabilities() error {
	f, err := os.Open("/proc/thread-self/status")
	if err != nil {
		return fmt.Errorf("checking capabilities after dropping privileges: %w", err)
	}
	defer f.Close()
	return checkCaps(f)
}

func checkCaps(r io.Reader) error {
	seen := 0
	s := bufio.NewScanner(r)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), ":")
		switch k {
		case "CapInh", "CapPrm", "CapEff", "CapAmb":
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return fmt.Errorf("checking capabilities: bad %s line %q", k, s.Text())
			}
			if n != 0 {
				return fmt.Errorf("capabilities left after dropping privileges: %s %016x", k, n)
			}
			seen++
		}
	}
	if seen != 4 {
		return errors.New("checking capabilities: CapInh, CapPrm, CapEff or CapAmb missing from /proc/thread-self/status")
	}
	return s.Err()
}

// chdir enters dir, or else the first of cwd, home and / that the (new)
// user may enter, and returns the directory entered.
func chdir(dir, cwd, home string) (string, error) {
	if dir != "" {
		if err := unix.Chdir(dir); err != nil {
			return "", fmt.Errorf("changing to directory %s: %w", dir, err)
		}
		return dir, nil
	}
	for _, d := range []string{cwd, home, "/"} {
		if d != "" && unix.Chdir(d) == nil {
			return d, nil
		}
	}
	return "", errors.New("changing directory: cannot enter the current directory, HOME or /")
}

// defaultPath is used when the environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds file like execvp(3): names with a slash are used as they
// are; otherwise each PATH entry is tried in order ("" is the current
// directory) and a file found but not executable is reported only if no
// later entry has an executable one. It runs after the privilege drop, so
// "executable" means for the target user.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	if pathEnv == "" {
		pathEnv = defaultPath
	}
	var denied error
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if !strings.Contains(p, "/") {
			p = "./" + p
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) && denied == nil {
				denied = err
			}
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if denied == nil {
				denied = unix.EISDIR
			}
			continue
		}
		if err := unix.Access(p, unix.X_OK); err != nil {
			if denied == nil {
				denied = err
			}
			continue
		}
		return p, nil
	}
	if denied != nil {
		return "", denied
	}
	return "", exec.ErrNotFound
}

// exitCode maps why a program could not be started to nszone's exit status.
func exitCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return ExitNotFound
	}
	return ExitCannotRun // EACCES, ENOEXEC, EISDIR, ETXTBSY, E2BIG...
}
