package naming

import (
	"strings"
	"testing"
)

func TestIDsNameTheirResource(t *testing.T) {
	a, b := NewID("web"), NewID("web")
	if a == b || !IsFullID(a) || !IsFullID(b) {
		t.Fatalf("NewID gave %q and %q, want two different full IDs", a, b)
	}
	for _, id := range []string{a, b} {
		if got, want := ResourceForID("gantry-", id), ResourceForName("gantry-", "web"); got != want {
			t.Errorf("ResourceForID(%q) = %q, want the name's %q", id, got, want)
		}
	}
	if ResourceForName("gantry-", "web") == ResourceForName("gantry-", "db") {
		t.Error("two names give one resource")
	}
	if n := NewName(); !strings.HasPrefix(n, "gantry_") || len(n) != len("gantry_")+12 {
		t.Errorf("NewName() = %q", n)
	}
}

func TestShapes(t *testing.T) {
	for s, want := range map[string]bool{"": false, "abc123": true, "ABC": false, "xyz": false} {
		if IsHex(s) != want {
			t.Errorf("IsHex(%q) = %v, want %v", s, !want, want)
		}
	}
	if IsFullID(strings.Repeat("a", 63)) || !IsFullID(strings.Repeat("a", 64)) {
		t.Error("IsFullID misjudges the length")
	}
	if ShortID("0123456789abcdef") != "0123456789ab" || ShortID("abc") != "abc" {
		t.Error("ShortID")
	}
}
