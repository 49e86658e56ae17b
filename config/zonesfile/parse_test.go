package zonesfile

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nszone/nszone/config"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.err from the current output")

// The bad corpus is parsed with the file's base name, so each .err reads
// exactly as nszone would print it for a file of that name.
const badDir = "../../testdata/bad"

func mustParse(t *testing.T, path string) *config.File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(filepath.Base(path), data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func terms(z *config.Zone) []string {
	var out []string
	for _, t := range z.Allow {
		out = append(out, t.String())
	}
	return out
}

func TestGood(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, f *config.File)
	}{
		{"contract.yaml", func(t *testing.T, f *config.File) {
			if f.Path != "contract.yaml" || f.Version != 1 || f.Uplink != "auto" || f.UplinkLine != 2 {
				t.Errorf("header: %+v", f)
			}
			if !slices.Equal(f.LAN, config.DefaultLAN) {
				t.Errorf("lan = %v", f.LAN)
			}
			var names []string
			for _, z := range f.Zones {
				names = append(names, z.Name)
			}
			if want := []string{"wan", "lan", "offline", "web"}; !slices.Equal(names, want) {
				t.Errorf("zones = %v, want %v (file order)", names, want)
			}
			web := f.Zone("web")
			if web == nil || web.Line != 19 || !web.IPv6 || !web.DNS.Auto || web.Subnet.IsValid() {
				t.Fatalf("web = %+v", web)
			}
			if got, want := terms(web), []string{"internet", "192.168.50.10:22/tcp", "host", "zone:lan"}; !slices.Equal(got, want) {
				t.Errorf("web allow = %q, want %q", got, want)
			}
			ssh := web.Allow[1]
			if ssh.Kind != config.TermAddr || ssh.Prefix != pfx("192.168.50.10/32") || ssh.Proto != "tcp" ||
				ssh.PortLo != 22 || ssh.PortHi != 22 || ssh.Line != 20 || ssh.Raw != "192.168.50.10:22/tcp" {
				t.Errorf("ssh term = %+v", ssh)
			}
			if zt := web.Allow[3]; zt.Kind != config.TermZone || zt.Zone != "lan" {
				t.Errorf("zone term = %+v", zt)
			}
			if off := f.Zone("offline"); off == nil || off.Allow == nil || len(off.Allow) != 0 {
				t.Errorf("offline = %+v, want an empty non-nil allow list", off)
			}
			if wan := f.Zone("wan"); wan.DNS.Line != 14 || !wan.DNS.Auto {
				t.Errorf("wan dns = %+v", wan.DNS)
			}
			want := config.Check{Internet: []string{"203.0.113.10:80"}, LAN: []string{"192.168.50.10:80"}, DNS: []string{"www.example"}}
			if fmt.Sprint(f.Check) != fmt.Sprint(want) {
				t.Errorf("check = %+v", f.Check)
			}
		}},
		{"minimal.yaml", func(t *testing.T, f *config.File) {
			if f.Uplink != "auto" || f.UplinkLine != 0 || len(f.Zones) != 0 || !slices.Equal(f.LAN, config.DefaultLAN) {
				t.Errorf("minimal = %+v", f)
			}
			if f.Check.Internet != nil || f.Check.LAN != nil || f.Check.DNS != nil {
				t.Errorf("check = %#v, want nil lists (not given)", f.Check)
			}
			f.LAN[0] = pfx("1.0.0.0/8") // must not write through to DefaultLAN
			if config.DefaultLAN[0] != pfx("10.0.0.0/8") {
				t.Error("File.LAN aliases DefaultLAN")
			}
		}},
		{"v6-ports.yaml", func(t *testing.T, f *config.File) {
			if f.Uplink != "eth0" || f.UplinkLine != 3 {
				t.Errorf("uplink = %q line %d", f.Uplink, f.UplinkLine)
			}
			if want := []netip.Prefix{pfx("192.168.1.0/24"), pfx("2001:db8:1::/48"), pfx("10.1.2.3/32")}; !slices.Equal(f.LAN, want) {
				t.Errorf("lan = %v", f.LAN)
			}
			dev := f.Zone("dev")
			want := []string{"[2001:db8::1]:443/tcp", "[2001:db8::/32]:8000-8080", "2001:db8::53", "fd00::/8",
				"192.168.1.10:6000-6010/udp", "10.0.0.0/8:22", "192.168.1.1", "zone:build"}
			if got := terms(dev); !slices.Equal(got, want) {
				t.Errorf("dev allow = %q\nwant %q", got, want)
			}
			r := dev.Allow[1]
			if r.Prefix != pfx("2001:db8::/32") || r.PortLo != 8000 || r.PortHi != 8080 || r.Proto != "" {
				t.Errorf("range term = %+v", r)
			}
			if a := dev.Allow[2]; a.Prefix != pfx("2001:db8::53/128") || a.PortLo != 0 {
				t.Errorf("bare v6 term = %+v", a)
			}
			if dev.DNS.Auto || dev.DNS.Line != 19 ||
				!slices.Equal(dev.DNS.Servers, []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("2001:db8::53")}) {
				t.Errorf("dev dns = %+v", dev.DNS)
			}
			if dev.Subnet != pfx("10.200.0.0/30") || dev.Subnet6 != pfx("fd42:1::/64") {
				t.Errorf("dev subnets = %v %v", dev.Subnet, dev.Subnet6)
			}
			build := f.Zone("build")
			if build.IPv6 || build.DNS.Auto || len(build.DNS.Servers) != 0 || build.Subnet6.IsValid() {
				t.Errorf("build = %+v", build)
			}
			if a := build.Allow[1]; a.PortLo != 1 || a.PortHi != 65535 || a.Proto != "tcp" {
				t.Errorf("full range term = %+v", a)
			}
			if q := f.Zone("quiet"); q.DNS.Auto || len(q.DNS.Servers) != 0 {
				t.Errorf("dns: [] must mean none, got %+v", q.DNS)
			}
			if !slices.Equal(f.Check.Internet, []string{"[2001:db8::80]:80", "example.com:443"}) ||
				f.Check.LAN == nil || len(f.Check.LAN) != 0 || f.Check.DNS != nil {
				t.Errorf("check = %#v", f.Check)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tt.check(t, mustParse(t, filepath.Join("../../testdata/good", tt.file)))
		})
	}
	// Every good file parses, including those without a table entry.
	paths, _ := filepath.Glob("../../testdata/good/*.yaml")
	for _, p := range paths {
		mustParse(t, p)
	}
}

// lineless are the bad files for which no line is meaningful.
var lineless = []string{"empty.yaml", "whitespace-only.yaml", "comments-only.yaml", "doc-separator-only.yaml"}

func TestBad(t *testing.T) {
	entries, err := os.ReadDir(badDir)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name()] = true
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		base, ext := strings.TrimSuffix(name, filepath.Ext(name)), filepath.Ext(name)
		switch {
		case ext == ".err" && !have[base+".yaml"]:
			t.Errorf("%s has no %s.yaml", name, base)
		case ext == ".yaml" && !have[base+".err"] && !*update:
			t.Errorf("%s has no %s.err", name, base)
		case ext != ".yaml" && ext != ".err":
			t.Errorf("stray file %s in %s", name, badDir)
		}
		if ext != ".yaml" {
			continue
		}
		n++
		t.Run(base, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(badDir, name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(name, data)
			if err == nil {
				t.Fatalf("parsed without error: %+v", f)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			if ce.File != name || ce.Msg == "" {
				t.Errorf("error = %#v", ce)
			}
			if (ce.Line == 0) != slices.Contains(lineless, name) {
				t.Errorf("line %d for %s; only %v have none", ce.Line, name, lineless)
			}
			errFile := filepath.Join(badDir, base+".err")
			if *update {
				if err := os.WriteFile(errFile, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err2 := os.ReadFile(errFile)
			if err2 != nil {
				t.Fatal(err2)
			}
			if got := err.Error(); got != strings.TrimSuffix(string(want), "\n") {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
	if n < 45 {
		t.Errorf("only %d bad files; the corpus must cover at least 45 cases", n)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse("big.yaml", make([]byte, MaxSize+1))
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Line != 0 || !strings.Contains(ce.Msg, "larger than") {
		t.Errorf("err = %v", err)
	}
}

// bigFile is a valid zones file of about size bytes: many zones with
// subnets and terms, the worst case for the whole-file checks.
func bigFile(size int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nzones:\n  base: {}\n")
	for i := 0; b.Len() < size-200; i++ {
		fmt.Fprintf(&b, "  z%d:\n    allow: [internet, \"10.%d.%d.0/24:443/tcp\", \"zone:base\"]\n    subnet: 10.%d.%d.%d/30\n",
			i, i>>8&255, i&255, 64+i>>14, i>>6&255, i&63*4)
		fmt.Fprintf(&b, "    subnet6: fd00:%x::/64\n", i)
	}
	return []byte(b.String())
}

func TestParseBig(t *testing.T) {
	data := bigFile(MaxSize)
	f, err := Parse("big.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Zones) < 5000 {
		t.Errorf("only %d zones in %d bytes", len(f.Zones), len(data))
	}
}

func BenchmarkParse1MiB(b *testing.B) {
	data := bigFile(MaxSize)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    config.Error
		want string
	}{
		{config.Error{File: "z.yaml", Line: 7, Msg: "bad"}, "z.yaml:7: bad"},
		{config.Error{File: "z.yaml", Msg: "empty file"}, "z.yaml: empty file"},
		{config.Error{Msg: "x"}, "built-in default: x"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestDefault(t *testing.T) {
	f := config.Default()
	if f.Path != "" || f.Version != 1 || f.Uplink != "auto" || !slices.Equal(f.LAN, config.DefaultLAN) {
		t.Errorf("default = %+v", f)
	}
	want := map[string][]string{"wan": {"internet"}, "lan": {"lan"}, "offline": nil}
	if len(f.Zones) != 3 {
		t.Fatalf("zones = %+v", f.Zones)
	}
	for i, name := range []string{"wan", "lan", "offline"} {
		z := f.Zones[i]
		if z.Name != name || !z.IPv6 || !z.DNS.Auto || z.Allow == nil || !slices.Equal(terms(&z), want[name]) {
			t.Errorf("zone %d = %+v", i, z)
		}
		for _, tm := range z.Allow {
			if tm.Raw != tm.String() || tm.Line != 0 {
				t.Errorf("term %+v", tm)
			}
		}
	}
	f.LAN[0] = pfx("1.0.0.0/8")
	f.Zones[0].Allow[0].Kind = config.TermHost
	if g := config.Default(); g.LAN[0] != pfx("10.0.0.0/8") || g.Zones[0].Allow[0].Kind != config.TermInternet {
		t.Error("Default shares state between calls")
	}
}

func TestAccess(t *testing.T) {
	f, err := Parse("access.yaml", []byte(`version: 1
zones:
  wan:
    allow: [internet]
    users: [alice, "svc-web$", Bob.Smith]
    groups: [browsing]
    no_new_privs: true
  lan:
    allow: [lan]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Access{Users: []string{"alice", "svc-web$", "Bob.Smith"}, Groups: []string{"browsing"}, NoNewPrivs: true}
	if got := f.Zone("wan").Access; !slices.Equal(got.Users, want.Users) || !slices.Equal(got.Groups, want.Groups) || !got.NoNewPrivs {
		t.Errorf("wan access = %+v, want %+v", got, want)
	}
	if got := f.Zone("lan").Access; got.Users != nil || got.Groups != nil || got.NoNewPrivs {
		t.Errorf("lan access = %+v, want none: only root enters a zone that names nobody", got)
	}
}
