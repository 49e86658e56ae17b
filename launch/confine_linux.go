package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Confinement: a network namespace holds the network, not a compromised
// program. Through the host's /proc it reaches /proc/PID/root of its parent
// outside the zone (and the whole file system as that process sees it);
// through /tmp, /run and the user's runtime directory every unix socket of
// the host's (agents, resolvers, Docker's, the system bus); through the
// session bus the user's service manager, which starts programs outside the
// zone, and other programs' names (a browser's instance outside the zone
// takes the URL). A confined program therefore gets, as bubblewrap and
// Flatpak give it:
//
//   - its own PID namespace and /proc: no process outside is visible;
//   - a private /tmp and /var/tmp (desktop: the X11 socket directory bound
//     in, read-only);
//   - a private /run: of the user's runtime directory only the display and
//     sound sockets (Wayland, PipeWire, PulseAudio) and, for desktop, the
//     session bus through xdg-dbus-proxy with a filter that lets it talk to
//     notifications and the portal's file chooser and settings, and to no
//     other name (not the service managers, not other programs, not the
//     portal's OpenURI, which would open a URL outside the zone);
//   - strict: no display, sound or bus at all.
//
// The PID namespace needs a process inside it that mounts /proc and stays
// as its init: Options.Init (nszone-zoneinit), else this program again,
// started as nszone-init, which becomes the user, starts the program, reaps
// orphans and exits with the program's status. The process that started it
// waits, as the user, and exits with that status too.

// Confinements, as the zones file's confine: names them.
const (
	ConfineDesktop = "desktop"
	ConfineStrict  = "strict"
	ConfineNone    = "none"
)

// initArg0 is the name the init of a confined zone runs under.
const initArg0 = "nszone-init"

// initProtocol is the version of initState. An init of another nszone (a
// stale nszone-zoneinit beside a new nszone) refuses the state, and unknown
// fields are refused too: nothing asked for is ever silently left undone.
const initProtocol = 1

// openInit opens the zone's init binary (path "" is this program), before
// any mount changes what a path names. It runs as root, so a file of its
// own must be trusted as much as this program is: a regular file, no
// symbolic link, owned by root or by this program's owner, in a directory
// of theirs, neither writable by anyone else.
func openInit(path string) (*os.File, error) {
	if path == "" {
		return os.Open("/proc/self/exe") // running already
	}
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return nil, fmt.Errorf("checking the zone's init: %w", err)
	}
	trusted := func(st *unix.Stat_t) bool {
		return (st.Uid == 0 || st.Uid == self.Uid) && st.Mode&0o022 == 0
	}
	var dir unix.Stat_t
	if err := unix.Stat(filepath.Dir(path), &dir); err != nil {
		return nil, fmt.Errorf("checking the zone's init: %w", err)
	}
	if !trusted(&dir) {
		return nil, fmt.Errorf("refusing %s as the zone's init: its directory must be root's (or nszone's owner's) and no one else may write to it (owner uid %d, mode %#o)", path, dir.Uid, dir.Mode&0o7777)
	}
	// O_NONBLOCK: a FIFO put there must not hang exec; it is refused below.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the zone's init %s (a symbolic link is refused): %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("checking the zone's init %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || !trusted(&st) {
		f.Close()
		return nil, fmt.Errorf("refusing %s as the zone's init: it must be a regular file of root's (or nszone's owner's) that no one else may write (owner uid %d, mode %#o)", path, st.Uid, st.Mode&0o7777)
	}
	return f, nil
}

// runtimeKeep are the entries of the user's runtime directory a desktop
// program keeps: Wayland's socket (WAYLAND_DISPLAY, else wayland-0),
// PipeWire's and PulseAudio's. Nothing else: agents (gnupg, ssh, keyring),
// systemd's private socket, the real bus.
var runtimeKeep = []string{"pipewire-0", "pulse/native"}

// agentVars name sockets a confined program must not be pointed at.
var agentVars = []string{"SSH_AUTH_SOCK", "GPG_AGENT_INFO", "GNOME_KEYRING_CONTROL", "DBUS_SYSTEM_BUS_ADDRESS"}

// desktopVars are what strict takes away.
var desktopVars = []string{"DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "PULSE_SERVER"}

// busPolicy is the session bus filter (xdg-dbus-proxy's options).
var busPolicy = []string{
	"--filter",
	"--talk=org.freedesktop.Notifications",
	"--call=org.freedesktop.portal.Desktop=org.freedesktop.portal.FileChooser.*@/org/freedesktop/portal/desktop",
	"--call=org.freedesktop.portal.Desktop=org.freedesktop.portal.Settings.*@/org/freedesktop/portal/desktop",
	"--call=org.freedesktop.portal.Desktop=org.freedesktop.DBus.Properties.*@/org/freedesktop/portal/desktop",
	"--broadcast=org.freedesktop.portal.Desktop=org.freedesktop.portal.*@/org/freedesktop/portal/*",
}

// busProxy is a running xdg-dbus-proxy.
type busProxy struct {
	socket string   // where it listens, in the user's runtime directory
	sync   *os.File // closing it (with every copy) stops the proxy
	dir    *os.File // the runtime directory as the host sees it
}

// unlink takes the proxy's socket out of the host's runtime directory. The
// zone keeps reaching it through its bind mount of the socket itself.
func (p *busProxy) unlink() {
	if p == nil || p.dir == nil {
		return
	}
	_ = unix.Unlinkat(int(p.dir.Fd()), filepath.Base(p.socket), 0)
	p.dir.Close()
	p.dir = nil
}

// runtimeDirOf is the user's runtime directory, /run/user/UID.
func runtimeDirOf(uid int) string { return fmt.Sprintf("/run/user/%d", uid) }

// targetUID is whom the program runs as.
func targetUID(id *Identity) (int, int) {
	if id != nil {
		return id.UID, id.GID
	}
	return os.Geteuid(), os.Getegid()
}

// startBusProxy starts a filtering proxy of the user's session bus, as the
// user. No bus, or no xdg-dbus-proxy, is a warning: the program then has no
// bus at all.
func startBusProxy(o Options, id *Identity, zone string) (*busProxy, string, error) {
	uid, gid := targetUID(id)
	runtimeDir := runtimeDirOf(uid)
	upstream := sessionBus(o.Env, runtimeDir)
	if upstream == "" {
		return nil, "", nil // no session here: nothing to proxy
	}
	bin, err := exec.LookPath("xdg-dbus-proxy")
	if err != nil {
		return nil, "the session bus is not passed into the zone: xdg-dbus-proxy is not installed (Debian package xdg-dbus-proxy)", nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("starting the session bus filter: %w", err)
	}
	defer w.Close()
	dir, err := os.OpenFile(runtimeDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		r.Close()
		w.Close()
		return nil, "", fmt.Errorf("starting the session bus filter: %w", err)
	}
	p := &busProxy{socket: filepath.Join(runtimeDir, fmt.Sprintf("nszone-bus-%s-%d", zone, os.Getpid())), sync: r, dir: dir}
	args := append([]string{"--fd=3", upstream, p.socket}, busPolicy...)
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if id != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: toU32(id.Groups)}
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		dir.Close()
		return nil, "", fmt.Errorf("starting the session bus filter: %w", err)
	}
	go func() { _ = cmd.Wait() }() // reaped; it ends when the last copy of sync is closed
	w.Close()
	// It writes one byte once it listens.
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := r.Read(b); err != nil {
		r.Close()
		p.unlink()
		return nil, "", fmt.Errorf("the session bus filter did not start: %w", err)
	}
	_ = r.SetReadDeadline(time.Time{})
	return p, "", nil
}

// sessionBus is the session bus's path address, if the user has one.
func sessionBus(env []string, runtimeDir string) string {
	for _, part := range strings.Split(Getenv(env, "DBUS_SESSION_BUS_ADDRESS"), ";") {
		if strings.HasPrefix(part, "unix:path=") && isSocket(strings.TrimPrefix(strings.SplitN(part, ",", 2)[0], "unix:path=")) {
			return part
		}
	}
	if bus := filepath.Join(runtimeDir, "bus"); isSocket(bus) {
		return "unix:path=" + bus
	}
	return ""
}

func toU32(in []int) []uint32 {
	out := make([]uint32, len(in))
	for i, v := range in {
		out[i] = uint32(v)
	}
	return out
}

// confineFS gives the program, in the private mount namespace, a private
// /tmp, /var/tmp and /run, with only what its confinement keeps bound back
// in. It runs as root, before the privilege drop.
func confineFS(o Options, id *Identity, proxy *busProxy) error {
	uid, gid := targetUID(id)
	runtimeDir := runtimeDirOf(uid)
	desktop := o.Confine == ConfineDesktop
	// Detached copies of what stays, taken before /tmp and /run are covered.
	type kept struct {
		fd   int
		dst  string
		dir  bool
		from string
	}
	var keep []kept
	clone := func(src, dst string) error {
		st, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return nil // a link could point anywhere: not followed
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("keeping %s: %w", src, err)
		}
		keep = append(keep, kept{fd, dst, st.IsDir(), src})
		return nil
	}
	defer func() {
		for _, k := range keep {
			unix.Close(k.fd)
		}
	}()
	if desktop {
		if err := clone("/tmp/.X11-unix", "/tmp/.X11-unix"); err != nil {
			return err
		}
		names := append([]string{}, runtimeKeep...)
		if wl := Getenv(o.Env, "WAYLAND_DISPLAY"); wl != "" && !strings.Contains(wl, "/") {
			names = append(names, wl)
		} else if wl == "" {
			names = append(names, "wayland-0")
		}
		for _, n := range names {
			if err := clone(filepath.Join(runtimeDir, n), filepath.Join(runtimeDir, n)); err != nil {
				return err
			}
		}
		// The X authority file, where the display manager put it.
		if xa := Getenv(o.Env, "XAUTHORITY"); xa != "" && (strings.HasPrefix(xa, runtimeDir+"/") || strings.HasPrefix(xa, "/tmp/")) {
			if err := clone(xa, xa); err != nil {
				return err
			}
		}
		if proxy != nil {
			if err := clone(proxy.socket, filepath.Join(runtimeDir, "bus")); err != nil {
				return err
			}
		}
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if real, err := filepath.EvalSymlinks(d); err == nil && real == d {
			if err := unix.Mount("nszone-tmp", d, "tmpfs", flags, "mode=1777"); err != nil {
				return fmt.Errorf("a private %s: %w", d, err)
			}
		}
	}
	for _, d := range []string{"/run", "/var/run"} {
		if real, err := filepath.EvalSymlinks(d); err == nil && real == d {
			if err := unix.Mount("nszone-run", d, "tmpfs", flags|unix.MS_NOEXEC, "mode=0755"); err != nil {
				return fmt.Errorf("a private %s: %w", d, err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(runtimeDir), 0o755); err != nil {
		return fmt.Errorf("the private runtime directory: %w", err)
	}
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		return fmt.Errorf("the private runtime directory: %w", err)
	}
	if err := os.Chown(runtimeDir, uid, gid); err != nil {
		return fmt.Errorf("the private runtime directory: %w", err)
	}
	for _, k := range keep {
		parent := filepath.Dir(k.dst)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		if strings.HasPrefix(parent, runtimeDir+"/") {
			_ = os.Chown(parent, uid, gid) // pulse/: the user's, as on the host
		}
		if k.dir {
			if err := os.Mkdir(k.dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		} else if f, err := os.OpenFile(k.dst, os.O_CREATE|os.O_WRONLY, 0o600); err != nil {
			return err
		} else {
			f.Close()
		}
		if err := unix.MoveMount(k.fd, "", unix.AT_FDCWD, k.dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("binding %s into the zone: %w", k.from, err)
		}
		// Read-only: a socket is still connected to (the kernel checks write
		// access on regular files, directories and links only), but nothing
		// is created there: no program of the zone's plays a display server
		// for the programs outside.
		if err := unix.Mount("", k.dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("binding %s into the zone read-only: %w", k.from, err)
		}
	}
	return nil
}

// confinedEnv is env for a confined program: no agent sockets, the bus
// through the proxy; strict: no desktop at all.
func confinedEnv(env []string, confine string, uid int, proxy *busProxy) []string {
	for _, k := range agentVars {
		env = unsetenv(env, k)
	}
	runtimeDir := runtimeDirOf(uid)
	env = setenv(env, "XDG_RUNTIME_DIR", runtimeDir)
	// Firefox and its kin, however they were started (env, sh -c, a
	// .desktop file, xdg-open), neither hand their URL to an instance
	// outside (by whatever channel a version uses) nor take one: with the
	// profile held outside they refuse to start rather than load the page
	// on the outside instance's network. Chromium's channel, a socket in
	// /tmp, is gone with the private /tmp.
	env = setenv(env, "MOZ_NO_REMOTE", "1")
	if confine == ConfineStrict {
		for _, k := range desktopVars {
			env = unsetenv(env, k)
		}
		return env
	}
	env = unsetenv(env, "DBUS_SESSION_BUS_ADDRESS")
	if proxy != nil {
		env = setenv(env, "DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(runtimeDir, "bus"))
	}
	return env
}

// initState is what the init of a confined zone needs to finish the work:
// everything of Options that is data, and whom to become.
type initState struct {
	Protocol   int
	Argv, Env  []string
	Dir, Cwd   string
	NetnsPath  string
	Profile    bool
	NoNewPrivs bool
	ID         *Identity
}

// spawnInit starts the zone's init in a new PID namespace, hands it the
// state, waits as the user and exits with the program's status. It returns
// only when the init could not be started.
func spawnInit(o Options, id *Identity, cwd string, proxy *busProxy, initBin *os.File) error {
	uid, _ := targetUID(id)
	env := confinedEnv(buildEnv(o.Env, id), o.Confine, uid, proxy)
	st := initState{Protocol: initProtocol, Argv: o.Argv, Env: env, Dir: o.Dir, Cwd: cwd, NetnsPath: o.NetnsPath, Profile: o.Profile, NoNewPrivs: o.NoNewPrivs, ID: id}
	if o.Audit != nil {
		// The init cannot call back: the entry is logged here, with the
		// program as root finds it in the zone's PATH.
		path, err := lookPath(o.Argv[0], Getenv(env, "PATH"))
		if err != nil {
			return &ExitError{Code: exitCode(err), Err: fmt.Errorf("exec %q: %w", o.Argv[0], err)}
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		if err := o.Audit(path, o.Argv); err != nil {
			return setupErr(err)
		}
	}
	data, err := json.Marshal(st)
	if err != nil {
		return setupErr(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return setupErr(err)
	}
	// fd 3: the state; 4: the bus proxy's end, which lives as long as the
	// init; 5: the init's own binary, opened before the mounts (its path
	// may now name nothing, a private /tmp, or something else).
	var proxyEnd *os.File
	if proxy != nil {
		proxyEnd = proxy.sync
	}
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr, r, proxyEnd, initBin}
	// The child's fd 5: the path is resolved at execve, after the
	// descriptors are in place (the parent's number for it could be one
	// of 0-5, which the child's are made from).
	proc, err := os.StartProcess("/proc/self/fd/5", []string{initArg0}, &os.ProcAttr{
		Env:   []string{},
		Files: files,
		Sys: &syscall.SysProcAttr{
			// Its own mount namespace too (a copy of this one): the /proc
			// it mounts shows its PID namespace, in which this process,
			// which waits outside, has no /proc/self.
			Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS,
			// The init is root through and through (real uid too): only a
			// caller that is root already can start one.
			Credential: &syscall.Credential{Uid: 0, Gid: 0},
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	r.Close()
	if err != nil {
		w.Close()
		return setupErr(fmt.Errorf("starting the zone's init: %w", err))
	}
	_, werr := w.Write(data)
	w.Close()
	if werr != nil {
		_ = proc.Kill()
		return setupErr(fmt.Errorf("starting the zone's init: %w", werr))
	}
	if proxy != nil {
		proxy.sync.Close()
		proxy.unlink() // the init's mount namespace holds its bind mount
	}
	if o.Started != nil {
		o.Started()
	}
	// Wait as the user: nothing of root's stays around the program. Signals
	// someone sends this process go on to the program (through its init);
	// the terminal's reach the program directly.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT)
	if id != nil {
		if err := dropPrivileges(id); err != nil {
			_ = proc.Kill()
			return setupErr(err)
		}
	}
	go func() {
		for s := range sigs {
			if s != syscall.SIGINT { // the terminal sent it to the program too
				_ = proc.Signal(s)
			}
		}
	}()
	ps, err := proc.Wait()
	if err != nil {
		return setupErr(fmt.Errorf("waiting for the zone's init: %w", err))
	}
	os.Exit(exitStatus(ps.Sys().(syscall.WaitStatus)))
	return nil
}

// exitStatus is a wait status as a shell reports it.
func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// IsInit reports whether this process is the init of a confined zone:
// started as nszone-init, the first process of its PID namespace, root in
// every id. A caller that is not root already cannot make one.
func IsInit() bool {
	return len(os.Args) == 1 && os.Args[0] == initArg0 && os.Getpid() == 1 && os.Getuid() == 0 && os.Geteuid() == 0
}

// RunInit is the init of a confined zone: it mounts the zone's /proc,
// finishes what exec began (the user, the environment, the program) and
// exits with the program's status. It never returns.
func RunInit() {
	runtime.LockOSThread()
	code, err := runInit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nszone: "+err.Error())
	}
	os.Exit(code)
}

func runInit() (int, error) {
	state := os.NewFile(3, "init state")
	st, err := readInitState(state)
	state.Close()
	if err != nil {
		return ExitSetup, err
	}
	unix.CloseOnExec(4) // the bus proxy's: kept open here, not in the program
	_ = unix.Close(5)   // this binary's, which nszone exec started it through
	// This PID namespace's own /proc: no process outside is visible.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return ExitSetup, fmt.Errorf("mounting the zone's /proc: %w", err)
	}
	// Its name in ps, its threads' too: started through a descriptor, it
	// would be "5".
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		for _, t := range tasks {
			_ = os.WriteFile("/proc/self/task/"+t.Name()+"/comm", []byte(initArg0), 0)
		}
	}
	o := Options{Argv: st.Argv, Env: st.Env, Dir: st.Dir, NetnsPath: st.NetnsPath, Profile: st.Profile, NoNewPrivs: st.NoNewPrivs}
	var si *SingleInstance
	if st.Profile {
		si = LookupSingleInstance(st.Argv[0])
	}
	err = finish(o, st.ID, si, st.Cwd, &initProc{})
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err == nil {
			return ee.Code, nil
		}
		return ee.Code, ee.Err
	}
	return ExitSetup, err
}

// readInitState decodes what nszone exec hands its init, strictly.
func readInitState(r io.Reader) (initState, error) {
	var st initState
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("the zone's init: reading its state (an nszone-zoneinit of another nszone version?): %w", err)
	}
	if st.Protocol != initProtocol {
		return st, fmt.Errorf("the zone's init speaks protocol %d, nszone exec %d: install the nszone-zoneinit of the same nszone version", initProtocol, st.Protocol)
	}
	return st, nil
}

// initProc runs the program as the init's child and waits for it.
type initProc struct{}

// run starts the program, passes on the signals the init gets, reaps every
// orphan of the namespace and ends with the program's status (then the
// kernel ends whatever else runs in the namespace).
func (initProc) run(path string, argv, env []string) error {
	// The privilege drop cleared the death signal the parent asked for:
	// ask again, so that a nszone exec killed takes its program with it,
	// as it would have had it replaced itself by the program.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
	if err != nil {
		return execFailed(argv[0], path, err)
	}
	go func() {
		for s := range sigs {
			_ = syscall.Kill(pid, s.(syscall.Signal))
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return &ExitError{Code: ExitSetup, Err: fmt.Errorf("waiting for %s: %w", argv[0], err)}
		}
		if got == pid {
			return &ExitError{Code: exitStatus(ws)}
		}
	}
}
