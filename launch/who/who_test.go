package who

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestTargetCurrentUser(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skipf("current user unknown: %v", err)
	}
	for _, spec := range []string{me.Username, me.Uid} {
		id, err := Target(spec, nil, os.Geteuid())
		if err != nil {
			t.Fatalf("Target(%q): %v", spec, err)
		}
		if strconv.Itoa(id.UID) != me.Uid || strconv.Itoa(id.GID) != me.Gid || id.Name != me.Username || id.Home != me.HomeDir {
			t.Errorf("Target(%q) = %+v, want user %+v", spec, id, me)
		}
		if gid, _ := strconv.Atoi(me.Gid); !slices.Contains(id.Groups, gid) {
			t.Errorf("Target(%q): groups %v lack the primary group %s", spec, id.Groups, me.Gid)
		}
	}
}

func TestTargetUnknownUser(t *testing.T) {
	for _, spec := range []string{"nszone-no-such-user", "4000000123"} {
		_, err := Target(spec, nil, 0)
		if err == nil || !strings.Contains(err.Error(), spec) {
			t.Errorf("Target(%q) error = %v, want one naming the user", spec, err)
		}
	}
	_, err := Target("", []string{"SUDO_UID=4000000123"}, 0)
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

	id, err := Target("", sudo, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id.UID != 65534 || id.GID != 65534 || id.Name != nobody.Username || id.Home != nobody.HomeDir {
		t.Errorf("root under sudo: Target = %+v, want %s (65534:65534)", id, nobody.Username)
	}

	// SUDO_GID wins over the passwd group (newgrp before sudo).
	id, err = Target("", []string{"SUDO_UID=65534", "SUDO_GID=4242"}, 0)
	if err != nil || id.GID != 4242 {
		t.Errorf("SUDO_GID=4242: Target = %+v, %v; want gid 4242", id, err)
	}

	// Not root: SUDO_* is someone else's business.
	if id, err := Target("", sudo, 1000); id != nil || err != nil {
		t.Errorf("non-root with SUDO_UID: Target = %+v, %v; want nil, nil", id, err)
	}
	// Root without sudo stays root.
	if id, err := Target("", nil, 0); id != nil || err != nil {
		t.Errorf("root without sudo: Target = %+v, %v; want nil, nil", id, err)
	}
	// --user wins over SUDO_UID.
	root, err := Target("root", sudo, 0)
	if err != nil || root.UID != 0 {
		t.Errorf("--user root under sudo: Target = %+v, %v; want uid 0", root, err)
	}
}

// A setuid entry runs as its caller, whatever the environment says.
func TestCaller(t *testing.T) {
	t.Setenv("SUDO_UID", "65534")
	id, err := Caller()
	if err != nil {
		t.Skipf("this user is not in the user database: %v", err)
	}
	groups, _ := os.Getgroups()
	if id.UID != os.Getuid() || id.GID != os.Getgid() || !slices.Equal(id.Groups, groups) {
		t.Errorf("Caller() = %+v, want uid %d gid %d groups %v (the process's own)", id, os.Getuid(), os.Getgid(), groups)
	}
}
