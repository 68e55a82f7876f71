package runtimetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/gantryhq/gantry"
)

// testClose holds every backend to one closed state: Close is idempotent,
// afterwards every method fails with gantry.ErrClosed (and not
// ErrUnavailable, which promises that a retry may succeed), a pending Wait
// ends with it, and the functions given to BeforeClose run first, newest
// first, while the Runtime still works.
func (s *suite) testClose(t *testing.T) {
	t.Run("EveryMethodAfterClose", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		// Made without the helpers, whose removal would run at Close and
		// end the pending Wait first; another Runtime removes it.
		c, err := rt.Create(s.ctx(t), s.spec(newTag(), "exit 0"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		removeLater(t, s.runtime(t), c)
		pending, err := gantry.RegisterWait(s.ctx(t), rt, c.ID, gantry.WaitRemoved)
		if err != nil {
			t.Fatalf("RegisterWait(removed): %v", err)
		}
		if err := rt.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := rt.Close(); err != nil {
			t.Errorf("second Close: %v, want nil", err)
		}
		select {
		case r := <-pending:
			if !errors.Is(r.Err, gantry.ErrClosed) {
				t.Errorf("a Wait pending at Close returned %+v, %v; want ErrClosed", r.Status, r.Err)
			}
		case <-s.ctx(t).Done():
			t.Errorf("a Wait pending at Close did not return")
		}
		ctx := s.ctx(t)
		calls := map[string]error{}
		_, calls["Create"] = rt.Create(ctx, s.spec(newTag(), "exit 0"))
		calls["Start"] = rt.Start(ctx, c.ID)
		calls["Stop"] = rt.Stop(ctx, c.ID, gantry.StopOptions{})
		calls["Kill"] = rt.Kill(ctx, c.ID, "")
		calls["Remove"] = rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true})
		_, calls["Wait"] = rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		_, calls["RegisterWait"] = gantry.RegisterWait(ctx, rt, c.ID, gantry.WaitNextExit)
		_, calls["Logs"] = rt.Logs(ctx, c.ID, gantry.LogsOptions{})
		_, calls["Exec"] = rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}})
		_, calls["Inspect"] = rt.Inspect(ctx, c.ID)
		_, calls["List"] = rt.List(ctx, gantry.ListOptions{All: true})
		_, calls["BeforeClose"] = gantry.BeforeClose(rt, func() {})
		for name, err := range calls {
			switch {
			case !errors.Is(err, gantry.ErrClosed):
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			case errors.Is(err, gantry.ErrUnavailable):
				t.Errorf("%s after Close: %v is also ErrUnavailable, which promises a retry may succeed", name, err)
			}
		}
	})
	t.Run("BeforeCloseOrder", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		var ran []string
		register := func(name string) func() bool {
			stop, err := gantry.BeforeClose(rt, func() {
				ran = append(ran, name)
				if _, err := rt.Inspect(context.Background(), c.ID); err != nil {
					t.Errorf("Inspect from a BeforeClose function: %v, want the Runtime still working", err)
				}
			})
			if err != nil {
				t.Fatalf("BeforeClose: %v", err)
			}
			return stop
		}
		register("first")
		if !register("stopped")() {
			t.Errorf("stop of a function that has not run reported false")
		}
		stopLast := register("last")
		if err := rt.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if want := []string{"last", "first"}; !slices.Equal(ran, want) {
			t.Errorf("BeforeClose functions ran %q, want %q (newest first, the stopped one not at all)", ran, want)
		}
		if stopLast() {
			t.Errorf("stop of a function Close ran reported true")
		}
	})
}
