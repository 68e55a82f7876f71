package meta

import (
	"errors"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

func TestSweep(t *testing.T) {
	for _, bad := range []struct {
		session   string
		olderThan time.Duration
	}{{"", 0}, {"", -time.Hour}, {"Not A Label", 0}} {
		if _, err := NewSweep(bad.session, bad.olderThan); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("NewSweep(%q, %v) = %v, want ErrInvalidArgument", bad.session, bad.olderThan, err)
		}
	}
	old, fresh := time.Now().Add(-2*time.Hour), time.Now()
	mine, other := map[string]string{LabelSession: "s1"}, map[string]string{LabelSession: "s2"}
	s, err := NewSweep("s1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels  map[string]string
		created time.Time
		want    bool
	}{{mine, fresh, true}, {other, old, true}, {other, fresh, false}, {nil, fresh, false}} {
		if got := s.Selects(tc.labels, tc.created); got != tc.want {
			t.Errorf("Selects(%v, %v) = %v, want %v", tc.labels, tc.created, got, tc.want)
		}
	}
	bySession, _ := NewSweep("s1", 0)
	if bySession.Selects(other, old) {
		t.Error("a session sweep selected another session's old resource")
	}
}
