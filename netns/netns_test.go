package netns

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, n := range []string{"wan", "lab_router", "a.b", strings.Repeat("x", 255)} {
		if err := CheckName(n); err != nil {
			t.Errorf("CheckName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", ".", "..", "a/b", "a\x00", strings.Repeat("x", 256)} {
		if CheckName(n) == nil {
			t.Errorf("CheckName(%q) accepted", n)
		}
	}
}
