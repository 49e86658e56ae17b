// Package who looks up whom `nszone exec` runs a program as. It is the only
// part of exec that needs the user database (os/user, through NSS with cgo),
// so that the zone's init, which links launch but not who, starts without
// cgo.
package who

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/nszone/nszone/launch"
)

// Target resolves whom the program runs as, before anything is entered, so
// that an unknown user fails with nothing changed: spec (a name, else a
// numeric uid) when given, else the user who ran sudo when euid is root
// under sudo. nil means: keep the current identity.
func Target(spec string, env []string, euid int) (*launch.Identity, error) {
	var (
		u   *user.User
		gid string
		err error
	)
	switch sudoUID := launch.Getenv(env, "SUDO_UID"); {
	case spec != "":
		// Like chown and id: a name first, then a numeric uid.
		u, err = user.Lookup(spec)
		if _, nerr := strconv.Atoi(spec); err != nil && nerr == nil {
			u, err = user.LookupId(spec)
		}
		if err != nil {
			return nil, fmt.Errorf("looking up user %q: %w", spec, err)
		}
		gid = u.Gid
	case euid == 0 && sudoUID != "":
		// sudo always sets SUDO_UID and SUDO_GID, and refuses users
		// missing from the passwd database, so a failed look-up is an error.
		u, err = user.LookupId(sudoUID)
		if err != nil {
			return nil, fmt.Errorf("looking up the invoking user (SUDO_UID=%s): %w", sudoUID, err)
		}
		// SUDO_GID is the group the user was in when calling sudo (it may
		// differ from the passwd one after newgrp).
		gid = launch.Getenv(env, "SUDO_GID")
		if gid == "" {
			gid = u.Gid
		}
	default:
		return nil, nil
	}

	id := &launch.Identity{Name: u.Username, Home: u.HomeDir, Shell: loginShell(u.Username)}
	if id.UID, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid %q", u.Username, u.Uid)
	}
	if id.GID, err = strconv.Atoi(gid); err != nil {
		return nil, fmt.Errorf("user %q: invalid gid %q", u.Username, gid)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("listing the groups of user %q: %w", u.Username, err)
	}
	for _, g := range gids {
		n, err := strconv.Atoi(g)
		if err != nil {
			return nil, fmt.Errorf("user %q: invalid group id %q", u.Username, g)
		}
		id.Groups = append(id.Groups, n)
	}
	return id, nil
}

// Caller is the identity this process was started with: its real uid, real
// gid and supplementary groups as the kernel holds them (so a newgrp or a
// group granted at login counts as it does outside the zone). It is whom a
// setuid-root nszone-enter runs programs as, never taken from the
// environment.
func Caller() (*launch.Identity, error) {
	uid := os.Getuid()
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil, fmt.Errorf("looking up your user (uid %d): %w", uid, err)
	}
	groups, err := os.Getgroups()
	if err != nil {
		return nil, fmt.Errorf("reading your groups: %w", err)
	}
	return &launch.Identity{UID: uid, GID: os.Getgid(), Groups: groups, Name: u.Username, Home: u.HomeDir, Shell: loginShell(u.Username)}, nil
}

// loginShell reads the user's shell from /etc/passwd; os/user does not
// expose it. Users known only through NSS (LDAP, sssd) get "".
func loginShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) == 7 && fields[0] == name {
			return fields[6]
		}
	}
	return ""
}
