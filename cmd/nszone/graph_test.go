package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nszone/nszone/config/zonesfile"
	"github.com/nszone/nszone/graph"
)

func TestGraphCommand(t *testing.T) {
	file := writeFile(t, testZones)
	f, err := zonesfile.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range graph.Formats {
		want, _ := graph.Render(f, format)
		args := []string{"graph", "-c", file}
		if format != graph.DOT {
			args = append(args, "--format", format)
		}
		out, errs, code := runIn(t, args...)
		if code != 0 || out != want {
			t.Errorf("%v: exit %d %s\n%s", args, code, errs, out)
		}
	}
	// With no file anywhere, the built-in default is drawn.
	t.Setenv("NSZONE_CONFIG", "")
	if _, builtin, _ := zonesfile.Locate(""); builtin {
		if out, _, code := runIn(t, "graph"); code != 0 || !strings.Contains(out, "built-in default") || !strings.Contains(out, "zone offline") {
			t.Errorf("graph with no file: exit %d\n%s", code, out)
		}
	}
	if _, errs, code := runIn(t, "graph", "-c", file, "--format", "png"); code != exitUsage || !strings.Contains(errs, "dot or mermaid") {
		t.Errorf("--format png: exit %d %s", code, errs)
	}
	bad := writeFile(t, "version: 1\nzones:\n  wan:\n    allow: [bogus]\n")
	if _, errs, code := runIn(t, "graph", "-c", bad); code != exitUsage || !strings.Contains(errs, bad+":4:") {
		t.Errorf("invalid file: exit %d %s", code, errs)
	}
	if _, _, code := runIn(t, "graph", "extra"); code != exitUsage {
		t.Errorf("graph extra: exit %d", code)
	}

	// nszone graph | dot -Tsvg
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("dot not installed (Debian package graphviz; scripts/deps installs it)")
	}
	out, _, _ := runIn(t, "graph", "-c", file)
	c := exec.Command(dot, "-Tsvg")
	c.Stdin = strings.NewReader(out)
	svg, err := c.Output()
	if err != nil || !strings.Contains(string(svg), "zone web&#45;1") {
		t.Errorf("dot -Tsvg: %v\n%.400s", err, svg)
	}
}
