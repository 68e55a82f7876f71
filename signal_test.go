package gantry_test

import (
	"errors"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{
		"SIGTERM": 15, "TERM": 15, "term": 15, "15": 15, "SIGKILL": 9, "kill": 9,
		"SIGUSR1": 10, "usr2": 12, "SIGHUP": 1, "SIGWINCH": 28, "SIGRTMIN+0": 34,
		"RTMIN+3": 37, "64": 64, "SIGIOT": 6, "SIGPOLL": 29,
	} {
		got, err := gantry.ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "65", "32", "SIGFOO", "SIG", "RTMIN+31", "9x"} {
		if _, err := gantry.ParseSignal(in); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("ParseSignal(%q) error = %v, want ErrInvalidArgument", in, err)
		}
	}
}

func TestSignalNameRoundTrip(t *testing.T) {
	for n := 1; n <= 64; n++ {
		name := gantry.SignalName(n)
		if n == 32 || n == 33 {
			if name != "" {
				t.Errorf("SignalName(%d) = %q, want empty", n, name)
			}
			continue
		}
		got, err := gantry.ParseSignal(name)
		if err != nil || got != n {
			t.Errorf("ParseSignal(SignalName(%d) = %q) = %d, %v", n, name, got, err)
		}
	}
	if gantry.SignalName(6) != "SIGABRT" || gantry.SignalName(29) != "SIGIO" {
		t.Errorf("aliases: SignalName(6) = %q, SignalName(29) = %q", gantry.SignalName(6), gantry.SignalName(29))
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"TERM", "15", "SIGRTMIN+2", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := gantry.ParseSignal(s)
		if err != nil {
			if !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Fatalf("ParseSignal(%q) = %v", s, err)
			}
			return
		}
		if back, err := gantry.ParseSignal(gantry.SignalName(n)); err != nil || back != n {
			t.Fatalf("ParseSignal(%q) = %d does not round-trip: %d, %v", s, n, back, err)
		}
	})
}
