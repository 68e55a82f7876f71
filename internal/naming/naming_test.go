package naming

import (
	"errors"
	"strings"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/meta"
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

func TestLookup(t *testing.T) {
	web, db := NewID("web"), NewID("db")
	recs := map[string]meta.Record{
		ResourceForName("p-", "web"): {ID: web, Name: "web"},
		ResourceForName("p-", "db"):  {ID: db, Name: "db"},
	}
	gets := 0
	get := func(resource string) (string, meta.Record, bool, error) {
		gets++
		rec, ok := recs[resource]
		return rec.Name, rec, ok, nil
	}
	list := func() ([]string, []meta.Record, error) {
		return []string{"web", "db"}, []meta.Record{recs[ResourceForName("p-", "web")], recs[ResourceForName("p-", "db")]}, nil
	}
	for id, want := range map[string]string{web: "web", "web": "web", "/db": "db", web[:12]: "web", db[:5]: "db"} {
		got, err := Lookup(id, "p-", get, list)
		if err != nil || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", id, got, err, want)
		}
	}
	for id, want := range map[string]error{"": gantry.ErrInvalidArgument, "nope": gantry.ErrNotFound, "has space": gantry.ErrNotFound, "fff": gantry.ErrNotFound} {
		if _, err := Lookup(id, "p-", get, list); !errors.Is(err, want) {
			t.Errorf("Lookup(%q) = %v, want %v", id, err, want)
		}
	}
	ambiguous := func() ([]string, []meta.Record, error) {
		return []string{"a", "b"}, []meta.Record{{ID: "abc1"}, {ID: "abc2"}}, nil
	}
	if _, err := Lookup("abc", "p-", get, ambiguous); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("an ambiguous prefix: %v, want ErrInvalidArgument", err)
	}
	boom := errors.New("boom")
	failing := func(string) (string, meta.Record, bool, error) { return "", meta.Record{}, false, boom }
	if _, err := Lookup(web, "p-", failing, list); !errors.Is(err, boom) {
		t.Errorf("a failing read: %v, want its error", err)
	}
	gets = 0
	Lookup("web", "p-", get, list)
	if gets != 1 {
		t.Errorf("a name took %d reads, want 1", gets)
	}
}
