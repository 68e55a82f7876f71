package cloudlog

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFilter(t *testing.T) {
	var f Filter
	f.Eq("resource.type", "cloud_run_job").
		Eq(Label("labels", "run.googleapis.com/execution_name"), `ex"1`).
		AnyOf("logName", "a", "b").
		AnyOf("empty").
		Since(time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))).
		Until(time.Time{})
	want := `resource.type="cloud_run_job" AND labels."run.googleapis.com/execution_name"="ex\"1" AND (logName="a" OR logName="b") AND timestamp>="2026-01-02T02:04:05.0000006Z"`
	if got := f.String(); got != want {
		t.Errorf("filter\n got %s\nwant %s", got, want)
	}
	c := f.Clone().Eq("x", "y")
	if strings.Contains(f.String(), `x="y"`) || !strings.HasSuffix(c.String(), ` AND x="y"`) {
		t.Errorf("Clone shares clauses: %s / %s", f.String(), c.String())
	}
	if (&Filter{}).String() != "" {
		t.Error("the zero Filter is not empty")
	}
}

func TestLogNames(t *testing.T) {
	n := LogName("p", "run.googleapis.com/stdout")
	if n != "projects/p/logs/run.googleapis.com%2Fstdout" {
		t.Errorf("LogName = %q", n)
	}
	if id := LogID(n); id != "run.googleapis.com/stdout" {
		t.Errorf("LogID(%q) = %q", n, id)
	}
	if id := LogID("nothing"); id != "" {
		t.Errorf("LogID of a non-log name = %q", id)
	}
}

func TestDedupIsBounded(t *testing.T) {
	const log = "projects/p/logs/run.googleapis.com%2Fstdout"
	d := newDedup(3)
	for _, k := range []string{"a", "b", "c"} {
		if !d.fresh(log, k) {
			t.Fatalf("%q reported seen on first sight", k)
		}
	}
	if d.fresh(log, "b") {
		t.Error("b within the window reported fresh")
	}
	if !d.fresh("projects/p/logs/run.googleapis.com%2Fstderr", "b") {
		t.Error("the same insertId in another log reported seen")
	}
	d.fresh(log, "d") // forgets a
	if !d.fresh(log, "a") {
		t.Error("a, pushed out of the window, still remembered")
	}
	if len(d.seen) != 3 || len(d.ring) != 3 {
		t.Errorf("window of 3 holds %d keys in a ring of %d", len(d.seen), len(d.ring))
	}
	for range 2 {
		if !d.fresh(log, "") {
			t.Error("entries without an insertId must never be dropped")
		}
	}
}

// unquote reads a literal as the query language does (the grammar of
// Cloud Logging's string literals, which gcptest implements too).
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return "", false
		case c != '\\':
			b.WriteByte(c)
		case i+1 >= len(s):
			return "", false
		default:
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '\\', '"':
				b.WriteByte(s[i])
			case 'u':
				if i+4 >= len(s) {
					return "", false
				}
				v, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
				if err != nil {
					return "", false
				}
				b.WriteRune(rune(v))
				i += 4
			default:
				return "", false
			}
		}
	}
	return b.String(), true
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", `a"b`, `\`, "line\nnext", "\x00", "é", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		got, ok := unquote(q)
		if !ok {
			t.Fatalf("Quote(%q) = %s is not a valid literal", s, q)
		}
		// Each invalid byte reads back as U+FFFD, as ranging over s gives.
		if want := string([]rune(s)); got != want {
			t.Fatalf("Quote(%q) = %s reads back as %q", s, q, got)
		}
	})
}
