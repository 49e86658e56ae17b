package launch

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestBuildEnvUnchangedIdentity(t *testing.T) {
	env := []string{"HOME=/root", "USER=root", "SUDO_UID=1000", "PATH=/bin"}
	if got := buildEnv(env, nil); !slices.Equal(got, env) {
		t.Errorf("buildEnv(env, nil) = %q, want %q", got, env)
	}
}

func TestBuildEnvNewIdentity(t *testing.T) {
	env := []string{
		"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/zsh", "HOME=/again",
		"SUDO_UID=1000", "SUDO_GID=1000", "SUDO_USER=alice", "SUDO_COMMAND=/usr/bin/nszone",
		"DISPLAY=:0", "PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=/run/user/1000", "NOVALUE",
	}
	id := &identity{uid: 1000, gid: 1000, name: "alice", home: "/home/alice", shell: "/bin/bash"}
	got := buildEnv(env, id)
	want := []string{
		"DISPLAY=:0", "PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=/run/user/1000", "NOVALUE",
		"HOME=/home/alice", "USER=alice", "LOGNAME=alice", "SHELL=/bin/bash",
	}
	if !slices.Equal(got, want) {
		t.Errorf("buildEnv =\n%q\nwant\n%q", got, want)
	}

	id.shell = ""
	if got := buildEnv(env, id); getenv(got, "SHELL") != "" {
		t.Errorf("SHELL kept for a user of unknown shell: %q", got)
	}
}

func TestGetenvSetenv(t *testing.T) {
	env := []string{"A=1", "B=2", "A=3"}
	if got := getenv(env, "A"); got != "1" {
		t.Errorf("getenv A = %q, want the first value 1", got)
	}
	if got := getenv(env, "C"); got != "" {
		t.Errorf("getenv C = %q, want empty", got)
	}
	if got, want := setenv(env, "A", "9"), []string{"B=2", "A=9"}; !slices.Equal(got, want) {
		t.Errorf("setenv = %q, want %q", got, want)
	}
	if env[0] != "A=1" {
		t.Errorf("setenv changed its input: %q", env)
	}
}

func TestTargetCurrentUser(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skipf("current user unknown: %v", err)
	}
	for _, spec := range []string{me.Username, me.Uid} {
		id, err := target(spec, nil, os.Geteuid(), false)
		if err != nil {
			t.Fatalf("target(%q, false): %v", spec, err)
		}
		if strconv.Itoa(id.uid) != me.Uid || strconv.Itoa(id.gid) != me.Gid || id.name != me.Username || id.home != me.HomeDir {
			t.Errorf("target(%q, false) = %+v, want user %+v", spec, id, me)
		}
		if gid, _ := strconv.Atoi(me.Gid); !slices.Contains(id.groups, gid) {
			t.Errorf("target(%q, false): groups %v lack the primary group %s", spec, id.groups, me.Gid)
		}
	}
}

func TestTargetUnknownUser(t *testing.T) {
	for _, spec := range []string{"nszone-no-such-user", "4000000123"} {
		_, err := target(spec, nil, 0, false)
		if err == nil || !strings.Contains(err.Error(), spec) {
			t.Errorf("target(%q, false) error = %v, want one naming the user", spec, err)
		}
	}
	_, err := target("", []string{"SUDO_UID=4000000123"}, 0, false)
	if err == nil || !strings.Contains(err.Error(), "SUDO_UID=4000000123") {
		t.Errorf("unknown SUDO_UID: error = %v, want one naming it", err)
	}
}

func TestTargetSudo(t *testing.T) {
	nobody, err := user.LookupId("65534")
	if err != nil {
		t.Skip("no user 65534 on this system")
	}
	sudo := []string{"SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=" + nobody.Username}

	id, err := target("", sudo, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if id.uid != 65534 || id.gid != 65534 || id.name != nobody.Username || id.home != nobody.HomeDir {
		t.Errorf("root under sudo: target = %+v, want %s (65534:65534)", id, nobody.Username)
	}

	// SUDO_GID wins over the passwd group (newgrp before sudo).
	id, err = target("", []string{"SUDO_UID=65534", "SUDO_GID=4242"}, 0, false)
	if err != nil || id.gid != 4242 {
		t.Errorf("SUDO_GID=4242: target = %+v, %v; want gid 4242", id, err)
	}

	// Not root: SUDO_* is someone else's business.
	if id, err := target("", sudo, 1000, false); id != nil || err != nil {
		t.Errorf("non-root with SUDO_UID: target = %+v, %v; want nil, nil", id, err)
	}
	// Root without sudo stays root.
	if id, err := target("", nil, 0, false); id != nil || err != nil {
		t.Errorf("root without sudo: target = %+v, %v; want nil, nil", id, err)
	}
	// --user wins over SUDO_UID.
	root, err := target("root", sudo, 0, false)
	if err != nil || root.uid != 0 {
		t.Errorf("--user root under sudo: target = %+v, %v; want uid 0", root, err)
	}
}

// A setuid entry runs as its caller, whatever the environment says, and
// refuses --user.
func TestTargetSelf(t *testing.T) {
	sudo := []string{"SUDO_UID=65534", "SUDO_GID=65534"}
	id, err := target("", sudo, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	groups, _ := os.Getgroups()
	if id.uid != os.Getuid() || id.gid != os.Getgid() || !slices.Equal(id.groups, groups) {
		t.Errorf("self: target = %+v, want uid %d gid %d groups %v (the process's own)", id, os.Getuid(), os.Getgid(), groups)
	}
	if _, err := target("root", nil, 0, true); err == nil || !strings.Contains(err.Error(), "--user is for root") {
		t.Errorf("self with --user: error = %v, want a refusal", err)
	}
}
