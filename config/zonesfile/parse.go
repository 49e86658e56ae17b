// Package zonesfile finds, reads and validates nszone's zones file (YAML,
// version 1) into a config.File.
//
// It is strict on purpose: a zones file decides what programs may reach, so a
// typo must never silently widen or narrow a policy. Every error names the
// file and line. The package knows nothing about the running system; checks
// that need it (does the uplink exist, is a DNS server reachable from the
// host's own addresses) are made by package zones.
package zonesfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/nszone/nszone/config"
)

// MaxSize is the largest zones file accepted. A real file is a few hundred
// bytes; the limit keeps a wrong -c (a log, a disk image) from being slurped.
const MaxSize = 1 << 20

// Parse decodes and validates a zones file. name is used in error messages
// and as File.Path. Every error is a *Error.
func Parse(name string, data []byte) (*config.File, error) {
	if len(data) > MaxSize {
		return nil, &config.Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes (1 MiB)", MaxSize)}
	}
	if err := checkText(name, data); err != nil {
		return nil, err
	}
	root, err := decodeYAML(name, data)
	if err != nil {
		return nil, err
	}
	if err := checkNodes(name, root); err != nil {
		return nil, err
	}
	d := &decoder{name: name}
	return d.file(root)
}

// checkText refuses what is not a UTF-8 text file before yaml sees it: the
// yaml reader's own errors for these carry no line number.
func checkText(name string, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &config.Error{File: name, Msg: "empty file (want a mapping with version: 1 and zones)"}
	}
	line := 1
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n':
				line++
			case c == 0:
				return &config.Error{File: name, Line: line, Msg: "NUL byte (this is not a text file)"}
			case c < 0x20 && c != '\t' && c != '\r', c == 0x7f:
				return &config.Error{File: name, Line: line, Msg: fmt.Sprintf("control character U+%04X is not allowed", c)}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return &config.Error{File: name, Line: line, Msg: fmt.Sprintf("invalid utf-8 (byte 0x%02x); the file must be utf-8 text", c)}
		// Outside YAML's printable set (YAML 1.2 §5.1).
		case r >= 0x80 && r <= 0x9f && r != 0x85, r == 0xfffe, r == 0xffff:
			return &config.Error{File: name, Line: line, Msg: fmt.Sprintf("control character U+%04X is not allowed", r)}
		}
		i += size
	}
	return nil
}

// decodeYAML parses exactly one YAML document into a node tree. Decoding
// into yaml.Node never expands aliases, so alias bombs cost nothing here.
func decodeYAML(name string, data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The parser is third-party code reading untrusted input: a panic
		// in it must become an error, not take nszone down.
		if r := recover(); r != nil {
			root, err = nil, &config.Error{File: name, Msg: fmt.Sprintf("invalid yaml: parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // only comments
			return nil, &config.Error{File: name, Msg: "empty file (want a mapping with version: 1 and zones)"}
		}
		return nil, yamlError(name, data, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &config.Error{File: name, Line: next.Line, Msg: "a second yaml document starts here; a zones file holds exactly one"}
	case !errors.Is(err, io.EOF):
		return nil, yamlError(name, data, err)
	}
	if len(doc.Content) != 1 {
		return nil, &config.Error{File: name, Msg: "empty file (want a mapping with version: 1 and zones)"}
	}
	return doc.Content[0], nil
}

var (
	yamlLineRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })
	yamlAnchorRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`) })
)

// parserProblems are the yaml parser's (not scanner's) messages. yaml v3
// prints the parser's 0-based line for these, the scanner's 1-based one
// for the rest, and no line at all when the mark is on the first line.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// yamlError turns a yaml syntax error into FILE:LINE form.
func yamlError(name string, data []byte, err error) *config.Error {
	msg := err.Error()
	if m := yamlAnchorRE().FindStringSubmatch(msg); m != nil {
		// An alias to nothing: the composer gives no line, so find it.
		return &config.Error{File: name, Line: lineOf(data, "*"+m[1]), Err: err,
			Msg: fmt.Sprintf("anchors and aliases are not allowed (found alias \"*%s\")", clip(m[1], 60))}
	}
	line := 1
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	// At the end of the stream yaml counts one line past the last.
	n := bytes.Count(data, []byte("\n"))
	if !bytes.HasSuffix(data, []byte("\n")) {
		n++
	}
	line = min(line, n)
	// yaml reports a tab in indentation at or before its line, in words
	// that do not say "tab" every time; name it and its line.
	if strings.Contains(msg, "tab character") || msg == "found character that cannot start any token" {
		if l := tabIndented(data, line); l > 0 {
			line, msg = l, "tab in indentation (yaml indents with spaces only)"
		}
	}
	return &config.Error{File: name, Line: line, Msg: "invalid yaml: " + msg, Err: err}
}

// lineOf returns the 1-based line of the first occurrence of s in data, or 0.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// tabIndented returns line or the next one if its indentation holds a tab
// (yaml reports some tab errors at the line before), or 0.
func tabIndented(data []byte, line int) int {
	for i, l := range bytes.SplitN(data, []byte("\n"), line+2) {
		if i+1 >= line && i+1 <= line+1 && bytes.IndexByte(l[:len(l)-len(bytes.TrimLeft(l, " \t"))], '\t') >= 0 {
			return i + 1
		}
	}
	return 0
}

// checkNodes refuses, in document order, the YAML features that make a
// file mean something other than what it shows: anchors, aliases, merge
// keys and explicit tags. Alias nodes are not followed, so this is linear.
func checkNodes(name string, n *yaml.Node) error {
	switch {
	case n.Anchor != "":
		return &config.Error{File: name, Line: n.Line, Msg: fmt.Sprintf("anchors and aliases are not allowed (found anchor \"&%s\")", clip(n.Anchor, 60))}
	case n.Kind == yaml.AliasNode:
		return &config.Error{File: name, Line: n.Line, Msg: fmt.Sprintf("anchors and aliases are not allowed (found alias \"*%s\")", clip(n.Value, 60))}
	case n.Tag == "!!merge":
		return &config.Error{File: name, Line: n.Line, Msg: `merge keys ("<<") are not allowed`}
	case n.Style&yaml.TaggedStyle != 0:
		return &config.Error{File: name, Line: n.Line, Msg: fmt.Sprintf("explicit tag %q is not allowed", clip(n.Tag, 60))}
	}
	for _, c := range n.Content {
		if err := checkNodes(name, c); err != nil {
			return err
		}
	}
	return nil
}
