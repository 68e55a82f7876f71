package gantry_test

import (
	"errors"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestWaitConditionValidate(t *testing.T) {
	for _, c := range []gantry.WaitCondition{"", gantry.WaitNotRunning, gantry.WaitNextExit, gantry.WaitRemoved} {
		if err := c.Validate(); err != nil {
			t.Errorf("%q.Validate() = %v", c, err)
		}
	}
	if err := gantry.WaitCondition("stopped").Validate(); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf(`"stopped".Validate() = %v, want ErrInvalidArgument`, err)
	}
}

func TestAwait(t *testing.T) {
	ch := make(chan gantry.WaitResult, 1)
	ch <- gantry.WaitResult{Status: gantry.ExitStatus{ExitCode: 137, Signal: "SIGKILL"}}
	close(ch)
	if st, err := gantry.Await(ch, nil); err != nil || st.ExitCode != 137 {
		t.Errorf("Await = %+v, %v", st, err)
	}
	boom := errors.New("boom")
	if _, err := gantry.Await(nil, boom); err != boom {
		t.Errorf("Await of a failed registration = %v, want its error", err)
	}
	empty := make(chan gantry.WaitResult)
	close(empty)
	if _, err := gantry.Await(empty, nil); err == nil {
		t.Error("Await of a channel closed without a result returned no error")
	}
}

func TestRegisterWaitUnsupported(t *testing.T) {
	if _, err := gantry.RegisterWait(t.Context(), &bare{}, "x", gantry.WaitNextExit); !errors.Is(err, gantry.ErrNotSupported) {
		t.Errorf("RegisterWait on a backend without it = %v, want ErrNotSupported", err)
	}
	if _, err := gantry.BeforeClose(&bare{}, func() {}); !errors.Is(err, gantry.ErrNotSupported) {
		t.Errorf("BeforeClose on a backend without it = %v, want ErrNotSupported", err)
	}
}
