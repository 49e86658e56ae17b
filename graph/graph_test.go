package graph

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/config/zonesfile"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/zones-example.{dot,mmd,svg} from the current output")

// exampleZones is the zones file the README's picture shows.
const exampleZones = "docs/zones-example.yaml"

func loadRepoFile(t *testing.T, rel string) *config.File {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	f, err := zonesfile.Parse(rel, data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestGraphDocsCurrent keeps the README's picture (docs/zones-example.*)
// the one nszone graph draws today.
func TestGraphDocsCurrent(t *testing.T) {
	f := loadRepoFile(t, exampleZones)
	for _, c := range []struct{ format, ext string }{{DOT, ".dot"}, {Mermaid, ".mmd"}} {
		got, err := Render(f, c.format)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", strings.TrimSuffix(exampleZones, ".yaml")+c.ext)
		if *updateDocs {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			if c.format == DOT {
				svg := strings.TrimSuffix(path, ".dot") + ".svg"
				if out, err := exec.Command("dot", "-Tsvg", "-o", svg, path).CombinedOutput(); err != nil {
					t.Fatalf("dot -Tsvg: %v: %s", err, out)
				}
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("nszone graph --format %s of %s differs from %s: run `make docs` (or go test ./graph -run TestGraphDocsCurrent -update) and review the diff",
				c.format, exampleZones, path)
		}
	}
}

// TestGraphDotAccepts renders every good zones file and has Graphviz read it.
func TestGraphDotAccepts(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("dot not installed (Debian package graphviz; scripts/deps installs it)")
	}
	files := map[string]*config.File{"built-in default": config.Default(), exampleZones: loadRepoFile(t, exampleZones)}
	good, _ := filepath.Glob("../testdata/good/*.yaml")
	for _, p := range good {
		rel := strings.TrimPrefix(p, "../")
		files[rel] = loadRepoFile(t, rel)
	}
	for name, f := range files {
		src, err := Render(f, DOT)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(dot, "-Tsvg")
		cmd.Stdin = strings.NewReader(src)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || errb.Len() > 0 {
			t.Errorf("%s: dot -Tsvg: %v: %s\n%s", name, err, errb.String(), src)
			continue
		}
		if !strings.Contains(out.String(), "<svg") {
			t.Errorf("%s: dot wrote no svg", name)
		}
		for _, z := range f.Zones {
			if !strings.Contains(out.String(), "zone "+strings.ReplaceAll(z.Name, "-", "&#45;")) {
				t.Errorf("%s: the picture lacks zone %s", name, z.Name)
			}
		}
	}
}

func TestGraphPaths(t *testing.T) {
	f, err := zonesfile.Parse("z.yaml", []byte(`version: 1
uplink: eth0
zones:
  a-b:
    allow: ["192.168.1.5:22/tcp", "203.0.113.7", "0.0.0.0/0:443/tcp", "zone:shut", host]
    dns: [192.168.1.1]
    ipv6: false
    subnet: 10.200.0.0/30
  shut:
    allow: []
`))
	if err != nil {
		t.Fatal(err)
	}
	g := build(f)
	arrows := map[string]string{}
	for _, e := range g.edges {
		if e.kind == "allow" {
			arrows[e.from+">"+e.to] = strings.Join(e.label, " ")
		}
	}
	want := map[string]string{
		"zone_a_b>lan":       "192.168.1.5:22/tcp 0.0.0.0/0:443/tcp dns 192.168.1.1",
		"zone_a_b>internet":  "203.0.113.7 0.0.0.0/0:443/tcp",
		"zone_a_b>zone_shut": "zone:shut",
		"zone_a_b>host":      "host",
	}
	for k, v := range want {
		if arrows[k] != v {
			t.Errorf("arrow %s: %q, want %q", k, arrows[k], v)
		}
	}
	if len(arrows) != len(want) {
		t.Errorf("arrows %v, want %v", arrows, want)
	}
	z := map[string]string{}
	for _, n := range g.zones {
		z[n.id] = n.kind + ": " + strings.Join(n.lines, " / ")
	}
	if z["zone_a_b"] != "zone: zone a-b / dns: 192.168.1.1 / IPv4 only / subnet 10.200.0.0/30" {
		t.Errorf("zone a-b: %q", z["zone_a_b"])
	}
	if z["zone_shut"] != "closed: zone shut / allows nothing / (loopback only) / dns: none" {
		t.Errorf("zone shut: %q", z["zone_shut"])
	}
	for _, n := range g.nodes {
		if n.id == gUplink && n.lines[0] != "uplink eth0" {
			t.Errorf("uplink: %q", n.lines)
		}
	}

	m, err := Render(f, Mermaid)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"flowchart LR\n",
		`zone_a_b -->|"192.168.1.5:22/tcp<br/>0.0.0.0/0:443/tcp<br/>dns 192.168.1.1"| lan`,
		`zone_a_b -.-|"nsz-a-b"| host`,
		`zone_shut["zone shut<br/>allows nothing<br/>(loopback only)<br/>dns: none"]`,
		"class zone_shut closed\n",
	} {
		if !strings.Contains(m, s) {
			t.Errorf("mermaid lacks %q:\n%s", s, m)
		}
	}
	if _, err := Render(f, "png"); err == nil {
		t.Error("Render accepted format png")
	}
}

func TestGraphQuoting(t *testing.T) {
	f := config.Default()
	f.Path = "odd \"name\"\\\n.yaml"
	d, _ := Render(f, DOT)
	if !strings.Contains(d, `label="nszone: odd \"name\"\\\n.yaml\n`) {
		t.Errorf("dot title not quoted:\n%s", d)
	}
	m, _ := Render(f, Mermaid)
	if strings.Count(strings.SplitN(m, "flowchart", 2)[0], "\n") != 1+len(graphLegend) {
		t.Errorf("a newline in the path broke the mermaid comment:\n%s", m)
	}
}
