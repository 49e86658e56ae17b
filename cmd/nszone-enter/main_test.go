package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	good := []struct {
		args    string
		profile bool
		zone    string
		argv    []string
	}{
		{"wan -- firefox https://example.com", false, "wan", []string{"firefox", "https://example.com"}},
		{"wan firefox", false, "wan", []string{"firefox"}},
		{"--profile wan -- firefox", true, "wan", []string{"firefox"}},
		{"wan -- sh -c --user", false, "wan", []string{"sh", "-c", "--user"}}, // the program's own options
	}
	for _, tt := range good {
		a, err := parseArgs(strings.Fields(tt.args))
		if err != nil || a.profile != tt.profile || a.zone != tt.zone || !slices.Equal(a.argv, tt.argv) {
			t.Errorf("parseArgs(%q) = %+v, %v", tt.args, a, err)
		}
	}
	bad := map[string]string{
		"--user root wan -- id":     "--user is for root only",
		"--user=root wan -- id":     "--user is for root only",
		"-c /tmp/z.yaml wan -- id":  "-c: who may enter",
		"--config=/tmp/z wan -- id": "-c: who may enter",
		"--verbose wan -- id":       `unknown option "--verbose"`,
		"--profile=false wan -- id": `unknown option "--profile=false"`,
		"":                          "no zone given",
		"wan --":                    "no program given",
		"wan":                       "no program given",
	}
	for args, want := range bad {
		if _, err := parseArgs(strings.Fields(args)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseArgs(%q) error = %v, want %q", args, err, want)
		}
	}
}
