package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

var update = flag.Bool("update", false, "rewrite docs/man from the command tree (make man)")

// The man pages are generated here, in a test, so that the generator
// (cobra/doc and its Markdown-to-roff renderer) is not part of the nszone
// binary: `make man` runs TestManPagesCurrent with -update.

// manDate is the date the man pages carry. It is fixed, so that the pages in
// docs/man are the same whoever generates them; change it with the text.
var manDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// manDir is where the generated man pages are kept in the repository.
const manDir = "docs/man"

// genMan writes one man page per command of a fresh command tree into dir,
// which it creates.
func genMan(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := newRoot()
	root.InitDefaultHelpCmd() // added by Execute otherwise; it gets no page of its own
	root.DisableAutoGenTag = true
	walk(root, func(c *cobra.Command) { c.Long = manText(c.Long) })
	header := &doc.GenManHeader{Section: "1", Date: &manDate, Source: "nszone", Manual: "nszone manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("writing man pages into %s: %w", dir, err)
	}
	return nil
}

func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// manText turns a command's help text into the Markdown the man page is made
// from: indented lines (tables, lists of paths) become verbatim blocks, so
// they keep their columns instead of being filled into paragraphs.
func manText(s string) string {
	lines := strings.Split(s, "\n")
	var out []string
	prevIndented, prevBlank := false, true
	for _, l := range lines {
		indented := strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")
		blank := strings.TrimSpace(l) == ""
		if indented && !blank {
			if !prevIndented && !prevBlank {
				out = append(out, "")
			}
			l = "    " + l
		} else if !blank && prevIndented {
			out = append(out, "")
		}
		out = append(out, l)
		if !blank {
			prevIndented = indented
		}
		prevBlank = blank
	}
	return strings.Join(out, "\n")
}

// TestManPagesCurrent regenerates the man pages from the command tree and
// compares them with docs/man: a changed command, flag or help text must
// come with `make man`.
func TestManPagesCurrent(t *testing.T) {
	dir := t.TempDir()
	if err := genMan(dir); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(repoRoot(t), manDir)
	if *update {
		if err := os.RemoveAll(kept); err != nil {
			t.Fatal(err)
		}
		if err := genMan(kept); err != nil {
			t.Fatal(err)
		}
	}
	fresh, _ := filepath.Glob(filepath.Join(dir, "*"))
	old, _ := filepath.Glob(filepath.Join(kept, "*"))
	base := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = filepath.Base(p)
		}
		return out
	}
	if a, b := base(fresh), base(old); !slices.Equal(a, b) {
		t.Fatalf("man pages %v, %s has %v: run `make man`", a, manDir, b)
	}
	for _, p := range fresh {
		name := filepath.Base(p)
		got, _ := os.ReadFile(p)
		want, _ := os.ReadFile(filepath.Join(kept, name))
		if string(got) != string(want) {
			t.Errorf("%s/%s is out of date: run `make man` and review the diff", manDir, name)
		}
	}
	// Every command has a page; hidden and help commands do not.
	names := base(fresh)
	for _, c := range newRoot().Commands() {
		page := "nszone-" + c.Name() + ".1"
		if c.Hidden != slices.Contains(names, page) {
			continue
		}
		t.Errorf("command %s (hidden %v): page %s present %v", c.Name(), c.Hidden, page, slices.Contains(names, page))
	}
	if !slices.Contains(names, "nszone.1") {
		t.Error("no nszone.1")
	}
}

// TestManPagesRender has man(1) format every page without a warning.
func TestManPagesRender(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed: the pages are not rendered")
	}
	pages, _ := filepath.Glob(filepath.Join(repoRoot(t), manDir, "*.1"))
	if len(pages) == 0 {
		t.Fatal("no man pages")
	}
	for _, p := range pages {
		out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", p).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("groff %s: %v: %s", filepath.Base(p), err, out)
		}
	}
}
