package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompletionScripts: each shell's script generates, is valid in that
// shell (where the shell is installed), and asks nszone for completions.
func TestCompletionScripts(t *testing.T) {
	syntax := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}
	for _, sh := range completionShells {
		t.Run(sh, func(t *testing.T) {
			out, errs, code := runIn(t, "completion", sh)
			if code != 0 || !strings.Contains(out, "__complete") || !strings.Contains(out, "nszone") {
				t.Fatalf("completion %s: exit %d %s\n%.300s", sh, code, errs, out)
			}
			if _, err := exec.LookPath(syntax[sh][0]); err != nil {
				t.Skipf("%s not installed: the script's syntax is not checked", sh)
			}
			p := filepath.Join(t.TempDir(), "nszone."+sh)
			if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(syntax[sh][0], append(syntax[sh][1:], p)...).CombinedOutput(); err != nil {
				t.Errorf("%s rejects the script: %v: %s", sh, err, b)
			}
		})
	}
	if _, _, code := runIn(t, "completion", "powershell"); code != exitUsage {
		t.Errorf("completion powershell: exit %d, want %d", code, exitUsage)
	}
	if _, _, code := runIn(t, "completion"); code != exitUsage {
		t.Errorf("completion with no shell: exit %d, want %d", code, exitUsage)
	}
}

// complete asks nszone, as the shell scripts do, for the completions of
// args (the last one being the word under the cursor).
func complete(t *testing.T, args ...string) (words []string, directive string) {
	t.Helper()
	out, errs, code := runIn(t, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", args, code, errs)
	}
	l := lines(out)
	return l[:len(l)-1], l[len(l)-1]
}

// TestCompletionZoneNames: zone names come from the zones file the command
// line (or $NSZONE_CONFIG) names, each with its allow list.
func TestCompletionZoneNames(t *testing.T) {
	file := writeFile(t, testZones)
	all := []string{"wan\tallow internet", "web-1\tallow internet, 192.168.50.10:22/tcp, zone:wan", "offline\tallow nothing"}
	const noFiles = ":4"
	for _, cmd := range []string{"up", "down", "status", "check"} {
		got, dir := complete(t, cmd, "-c", file, "")
		if !slices.Equal(got, all) || dir != noFiles {
			t.Errorf("%s: %q %s, want %q %s", cmd, got, dir, all, noFiles)
		}
	}
	// Names already given are not offered again; the word typed so far filters.
	if got, _ := complete(t, "down", "-c", file, "wan", ""); !slices.Equal(got, all[1:]) {
		t.Errorf("down wan: %q", got)
	}
	if got, _ := complete(t, "up", "-c", file, "w"); !slices.Equal(got, all[:2]) {
		t.Errorf("up w: %q", got)
	}
	// exec takes no -c: the file is $NSZONE_CONFIG (else the system's); one
	// zone, then programs and files.
	t.Setenv("NSZONE_CONFIG", file)
	if got, dir := complete(t, "exec", ""); !slices.Equal(got, all) || dir != noFiles {
		t.Errorf("exec: %q %s", got, dir)
	}
	if got, dir := complete(t, "exec", "wan", ""); len(got) != 0 || dir != ":0" {
		t.Errorf("exec wan: %q %s, want the shell's default completion", got, dir)
	}
	// Flag values.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "-o", ""}, []string{"table", "json"}},
		{[]string{"plan", "-o", ""}, []string{"table", "json"}},
		{[]string{"graph", "--format", ""}, []string{"dot", "mermaid"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
	} {
		if got, _ := complete(t, c.args...); !slices.Equal(got, c.want) {
			t.Errorf("%v: %q, want %q", c.args, got, c.want)
		}
	}
	// -c completes YAML files.
	if _, dir := complete(t, "up", "-c", ""); dir != ":8" {
		t.Errorf("up -c: directive %s, want :8 (filter file extensions)", dir)
	}
	// A broken file gives no names, and no error in the middle of a command line.
	bad := writeFile(t, "version: 1\nzones: {wan: {allow: [bogus]}}\n")
	if got, _ := complete(t, "up", "-c", bad, ""); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "wan") }) {
		t.Errorf("up -c BAD offered %q", got)
	}
}

// TestCompletionRoundTrip runs the generated scripts in real shells, which
// call a real nszone binary for the zone names.
func TestCompletionRoundTrip(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command(goBin(), "build", "-buildvcs=false", "-o", filepath.Join(bin, "nszone"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	file := writeFile(t, testZones)
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "NSZONE_CONFIG="+file)
	want := []string{"offline", "wan", "web-1"}

	t.Run("bash", func(t *testing.T) {
		if _, err := exec.LookPath("bash"); err != nil {
			t.Skip("bash not installed")
		}
		// Without the bash-completion package, a stand-in for the one
		// function of it the script needs.
		script := `
if [[ -r /usr/share/bash-completion/bash_completion ]]; then source /usr/share/bash-completion/bash_completion; fi
if ! declare -F _get_comp_words_by_ref >/dev/null; then
  _get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
fi
compopt() { :; } # only works while bash itself is completing
source <(nszone completion bash)
COMP_WORDS=(nszone up ""); COMP_CWORD=2; COMP_LINE="nszone up "; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9
__start_nszone nszone "" up
printf '%s\n' "${COMPREPLY[@]}"
`
		c := exec.Command("bash", "-c", script)
		c.Env = env
		out, err := c.CombinedOutput()
		got := strings.Fields(string(out))
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("bash completes `nszone up ` to %q (%v), want %q", got, err, want)
		}
	})
	t.Run("fish", func(t *testing.T) {
		if _, err := exec.LookPath("fish"); err != nil {
			t.Skip("fish not installed")
		}
		c := exec.Command("fish", "--no-config", "-c", "nszone completion fish | source; complete -C 'nszone down '")
		c.Env = env
		out, err := c.CombinedOutput()
		var got []string
		for _, l := range lines(string(out)) {
			name, _, _ := strings.Cut(l, "\t")
			got = append(got, name)
		}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("fish completes `nszone down ` to %q (%v: %s), want %q", got, err, out, want)
		}
	})
}
