package gantry_test

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestCloseStateRunsHooksNewestFirstThenReleases(t *testing.T) {
	var s gantry.CloseState
	var order []string
	for _, name := range []string{"a", "b", "c"} {
		if _, err := s.BeforeClose(func() {
			if err := s.Err(); err != nil {
				t.Errorf("hook %s saw Err() = %v; the Runtime must still work", name, err)
			}
			order = append(order, name)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err before Close = %v", err)
	}
	released := 0
	if err := s.Close(func() error { released++; order = append(order, "release"); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"c", "b", "a", "release"}; !slices.Equal(order, want) {
		t.Errorf("order %q, want %q", order, want)
	}
	if err := s.Err(); !errors.Is(err, gantry.ErrClosed) {
		t.Errorf("Err after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(func() error { released++; return errors.New("again") }); err != nil || released != 1 {
		t.Errorf("second Close = %v with %d releases, want nil and 1", err, released)
	}
	if _, err := s.BeforeClose(func() {}); !errors.Is(err, gantry.ErrClosed) {
		t.Errorf("BeforeClose after Close = %v, want ErrClosed", err)
	}
	select {
	case <-s.Closing():
	default:
		t.Error("Closing() is not closed after Close")
	}
}

func TestCloseStateStop(t *testing.T) {
	var s gantry.CloseState
	ran := false
	stop, err := s.BeforeClose(func() { ran = true })
	if err != nil {
		t.Fatal(err)
	}
	if !stop() {
		t.Error("the first stop reported false")
	}
	if stop() {
		t.Error("a second stop reported true")
	}
	s.Close(func() error { return nil })
	if ran {
		t.Error("a stopped function ran")
	}
}

func TestCloseStateHookRegisteredByHook(t *testing.T) {
	var s gantry.CloseState
	var ran []string
	s.BeforeClose(func() {
		ran = append(ran, "outer")
		if _, err := s.BeforeClose(func() { ran = append(ran, "inner") }); err != nil {
			t.Errorf("BeforeClose from a hook: %v", err)
		}
	})
	s.Close(func() error { return nil })
	if want := []string{"outer", "inner"}; !slices.Equal(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
}

func TestCloseStateConcurrentClose(t *testing.T) {
	var s gantry.CloseState
	var hooks, releases atomic.Int32
	for range 10 {
		s.BeforeClose(func() { hooks.Add(1) })
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			s.Close(func() error { releases.Add(1); return nil })
			// Every Close returns only once the Runtime is released.
			if releases.Load() != 1 {
				t.Errorf("a Close returned before the release")
			}
		})
	}
	wg.Wait()
	if hooks.Load() != 10 || releases.Load() != 1 {
		t.Errorf("%d hooks and %d releases ran, want 10 and 1", hooks.Load(), releases.Load())
	}
}
