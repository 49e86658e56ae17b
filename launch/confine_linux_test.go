package launch

import (
	"slices"
	"testing"
)

func TestConfinedEnv(t *testing.T) {
	in := []string{"HOME=/home/a", "DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0", "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1",
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket",
		"GPG_AGENT_INFO=x", "XDG_RUNTIME_DIR=/somewhere"}
	for _, c := range []struct {
		confine string
		proxy   bool
		want    []string
	}{
		{ConfineDesktop, true, []string{"HOME=/home/a", "DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0", "XDG_RUNTIME_DIR=/run/user/1000",
			"MOZ_NO_REMOTE=1", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus"}},
		{ConfineDesktop, false, []string{"HOME=/home/a", "DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0", "XDG_RUNTIME_DIR=/run/user/1000", "MOZ_NO_REMOTE=1"}},
		{ConfineStrict, true, []string{"HOME=/home/a", "XDG_RUNTIME_DIR=/run/user/1000", "MOZ_NO_REMOTE=1"}},
	} {
		var p *busProxy
		if c.proxy {
			p = &busProxy{}
		}
		got := confinedEnv(slices.Clone(in), c.confine, 1000, p)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s (proxy %v):\n got %q\nwant %q", c.confine, c.proxy, got, want)
		}
	}
}
