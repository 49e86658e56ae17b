package zonesfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nszone/nszone/config"
)

// FuzzParse: Parse never panics, every error is a *Error naming the file,
// and whatever it accepts holds the package's invariants.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"../../testdata/good", badDir} {
		paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			if ce.File != "fuzz.yaml" || ce.Msg == "" || ce.Line < 0 {
				t.Fatalf("bad error %#v", ce)
			}
			return
		}
		checkInvariants(t, file)
	})
}

func checkInvariants(t *testing.T, f *config.File) {
	t.Helper()
	if f.Version != 1 || f.Uplink == "" || f.Zones == nil {
		t.Fatalf("accepted file %+v", f)
	}
	seen := map[string]bool{}
	for _, z := range f.Zones {
		if !config.ZoneNameRE().MatchString(z.Name) || seen[z.Name] || z.Line < 1 {
			t.Fatalf("accepted zone %+v", z)
		}
		seen[z.Name] = true
		keys := map[termKey]bool{}
		for _, tm := range z.Allow {
			back, err := parseTerm(tm.String())
			if err != nil || keyOf(back) != keyOf(tm) {
				t.Fatalf("term %+v renders as %q, which parses to %+v, %v", tm, tm.String(), back, err)
			}
			if keys[keyOf(tm)] || (tm.Kind == config.TermZone && tm.Zone == z.Name) || (!z.IPv6 && isIPv6(tm)) {
				t.Fatalf("accepted term %+v in zone %+v", tm, z)
			}
			keys[keyOf(tm)] = true
		}
	}
	for _, z := range f.Zones {
		for _, tm := range z.Allow {
			if tm.Kind == config.TermZone && !seen[tm.Zone] {
				t.Fatalf("zone %q allows missing zone %q", z.Name, tm.Zone)
			}
		}
	}
}

// FuzzTerm: parseTerm never panics, and an accepted term's String is a
// term with the same meaning.
func FuzzTerm(f *testing.F) {
	for _, s := range []string{"internet", "zone:lan", "1.2.3.4:80-90/tcp", "[2001:db8::/32]:53", "fe80::1%eth0", "10.0.0.0/8:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseTerm(s)
		if err != nil {
			return
		}
		back, err := parseTerm(tm.String())
		if err != nil || keyOf(back) != keyOf(tm) {
			t.Fatalf("%q parses to %+v, renders as %q, which parses to %+v, %v", s, tm, tm.String(), back, err)
		}
	})
}
