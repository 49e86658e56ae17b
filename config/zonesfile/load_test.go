package zonesfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nszone/nszone/config"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantError checks that err is a *Error for file with line 0 whose text
// contains all of parts.
func wantError(t *testing.T, err error, file string, parts ...string) *config.Error {
	t.Helper()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	if ce.File != file || ce.Line != 0 {
		t.Errorf("err = %#v, want file %q line 0", ce, file)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("err %q does not contain %q", err, p)
		}
	}
	return ce
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "zones.yaml", "version: 1\nzones:\n  web:\n    allow: [internet]\n")
	f, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != good || f.Zone("web") == nil {
		t.Errorf("Load = %+v", f)
	}

	// Errors inside the file name the path as given.
	bad := writeFile(t, dir, "bad.yaml", "version: 1\nzones:\n  Web: {}\n")
	if _, err := Load(bad); err == nil || err.Error() != bad+`:3: invalid zone name "Web": must match ^[a-z][a-z0-9-]{0,10}$` {
		t.Errorf("err = %v", err)
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing)
	if ce := wantError(t, err, missing, "no such file"); !errors.Is(ce, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}

	_, err = Load(dir)
	wantError(t, err, dir, "not a regular file (a directory)")

	// A symlink to a regular file is fine: config management does that.
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(link); err != nil {
		t.Errorf("Load(symlink) = %v", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	// Valid YAML all the way, so only the size can be the problem.
	big := writeFile(t, dir, "big.yaml", "version: 1\nzones: {}\n"+strings.Repeat("# padding padding padding\n", MaxSize/26+1))
	_, err := Load(big)
	wantError(t, err, big, "larger than 1048576 bytes")

	// Just under the limit is read and parsed.
	data := bigFile(MaxSize)
	ok := writeFile(t, dir, "ok.yaml", string(data))
	if _, err := Load(ok); err != nil {
		t.Errorf("Load(%d bytes) = %v", len(data), err)
	}
}

func TestLocate(t *testing.T) {
	dir := t.TempDir()
	flagFile := writeFile(t, dir, "flag.yaml", "")
	envFile := writeFile(t, dir, "env.yaml", "")
	sysFile := writeFile(t, dir, "system.yaml", "")
	missing := filepath.Join(dir, "missing.yaml")
	dangling := filepath.Join(dir, "dangling.yaml")
	if err := os.Symlink(missing, dangling); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		flag, env   string
		system      string
		wantPath    string
		wantBuiltin bool
		wantErr     string // substring; the *Error names the missing path
	}{
		{name: "flag", flag: flagFile, env: envFile, system: sysFile, wantPath: flagFile},
		{name: "env", env: envFile, system: sysFile, wantPath: envFile},
		{name: "system", system: sysFile, wantPath: sysFile},
		{name: "builtin", system: missing, wantBuiltin: true},
		{name: "empty env is unset", env: "", system: missing, wantBuiltin: true},
		{name: "dangling system symlink is not ignored", system: dangling, wantPath: dangling},
		{name: "flag missing", flag: missing, env: envFile, system: sysFile, wantErr: "zones file given by -c: no such file or directory"},
		{name: "env missing", env: missing, system: sysFile, wantErr: "zones file given by $NSZONE_CONFIG: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvVar, tt.env)
			old := systemPath
			systemPath = tt.system
			t.Cleanup(func() { systemPath = old })

			path, builtin, err := Locate(tt.flag)
			if tt.wantErr != "" {
				ce := wantError(t, err, missing, tt.wantErr)
				if !errors.Is(ce, fs.ErrNotExist) {
					t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
				}
				if path != "" || builtin {
					t.Errorf("Locate = %q, %v with an error", path, builtin)
				}
				return
			}
			if err != nil || path != tt.wantPath || builtin != tt.wantBuiltin {
				t.Errorf("Locate(%q) = %q, %v, %v; want %q, %v", tt.flag, path, builtin, err, tt.wantPath, tt.wantBuiltin)
			}
		})
	}
}
