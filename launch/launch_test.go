package launch

import (
	"slices"
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
	id := &Identity{UID: 1000, GID: 1000, Name: "alice", Home: "/home/alice", Shell: "/bin/bash"}
	got := buildEnv(env, id)
	want := []string{
		"DISPLAY=:0", "PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=/run/user/1000", "NOVALUE",
		"HOME=/home/alice", "USER=alice", "LOGNAME=alice", "SHELL=/bin/bash",
	}
	if !slices.Equal(got, want) {
		t.Errorf("buildEnv =\n%q\nwant\n%q", got, want)
	}

	id.Shell = ""
	if got := buildEnv(env, id); Getenv(got, "SHELL") != "" {
		t.Errorf("SHELL kept for a user of unknown shell: %q", got)
	}
}

func TestGetenvSetenv(t *testing.T) {
	env := []string{"A=1", "B=2", "A=3"}
	if got := Getenv(env, "A"); got != "1" {
		t.Errorf("getenv A = %q, want the first value 1", got)
	}
	if got := Getenv(env, "C"); got != "" {
		t.Errorf("getenv C = %q, want empty", got)
	}
	if got, want := setenv(env, "A", "9"), []string{"B=2", "A=9"}; !slices.Equal(got, want) {
		t.Errorf("setenv = %q, want %q", got, want)
	}
	if env[0] != "A=1" {
		t.Errorf("setenv changed its input: %q", env)
	}
}
