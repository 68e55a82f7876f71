package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// recorder is a testing.TB that records failures and cleanups instead of
// acting on them, so the suite can check what its helpers report. Its
// Fatal methods end the calling goroutine, as testing's do.
type recorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
	// fatalArgs are what Fatal or Fatalf (after its format) was given,
	// so that a check can look at an error's type, not only its text.
	fatalArgs []any
	errs      []string
	cleanups  []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprint(args...)
	r.fatalArgs = args
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.fatalArgs = args
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal != "" || len(r.errs) > 0
}

func (r *recorder) Logf(string, ...any) {}

// run calls f on its own goroutine, so a Fatal ends only f.
func (r *recorder) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// cleanup runs the recorded cleanups, last first, as testing does.
func (r *recorder) cleanup() {
	r.mu.Lock()
	fs := slices.Clone(r.cleanups)
	r.cleanups = nil
	r.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}

func (s *suite) testHelpers(t *testing.T) {
	t.Run("StartRemovesAtCleanup", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		rec := &recorder{TB: t}
		var c *gantry.Container
		rec.run(func() { c = Start(rec, rt, s.spec(tag, scriptForever)) })
		if rec.fatal != "" || c == nil {
			t.Fatalf("Start failed: %s", rec.fatal)
		}
		if c.State.Status != gantry.StatusRunning {
			t.Errorf("Start returned a container in state %q, want running", c.State.Status)
		}
		if len(rec.cleanups) != 1 {
			t.Fatalf("Start registered %d cleanups, want 1", len(rec.cleanups))
		}
		rec.cleanup()
		if len(rec.errs) > 0 {
			t.Errorf("cleanup reported %q", rec.errs)
		}
		if _, err := rt.Inspect(s.ctx(t), c.ID); !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("Inspect after cleanup: %v, want ErrNotFound", err)
		}
		if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
			t.Errorf("containers left after cleanup: %q", ids)
		}
	})
	t.Run("DeferredCloseRemoves", func(t *testing.T) {
		// The pattern the docs show: a test defers rt.Close(), which runs
		// before t's cleanups; the helpers must still remove what they
		// made. The check below is given to BeforeClose first, so it runs
		// last, once the helpers' removals have.
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		var left []string
		var listErr error
		if _, err := gantry.BeforeClose(rt, func() {
			left, listErr = s.listErr(rt, tag)
		}); err != nil {
			t.Fatalf("BeforeClose: %v", err)
		}
		rec := &recorder{TB: t}
		rec.run(func() {
			defer rt.Close()
			Start(rec, rt, s.spec(tag, scriptForever))
			Create(rec, rt, s.spec(tag, "exit 0"))
		})
		if rec.fatal != "" {
			t.Fatalf("helpers failed: %s", rec.fatal)
		}
		rec.cleanup()
		if len(rec.errs) > 0 {
			t.Errorf("cleanup after a deferred Close reported %q", rec.errs)
		}
		if listErr != nil || len(left) != 0 {
			t.Errorf("containers left when the deferred Close released the Runtime: %q (%v)", left, listErr)
		}
		if ids := s.list(t, s.runtime(t), tag, gantry.ListOptions{All: true}); len(ids) != 0 {
			t.Errorf("a new Runtime sees containers left after a deferred Close: %q", ids)
		}
	})
	t.Run("CleanupToleratesRemoved", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		rec := &recorder{TB: t}
		var c *gantry.Container
		rec.run(func() { c = Create(rec, rt, s.spec(newTag(), "exit 0")) })
		if c == nil {
			t.Fatalf("Create failed: %s", rec.fatal)
		}
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		rec.cleanup()
		if len(rec.errs) > 0 {
			t.Errorf("cleanup of a container the test removed reported %q", rec.errs)
		}
	})
	t.Run("StartFailsClearly", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		rec := &recorder{TB: t}
		spec := s.spec(newTag(), "exit 0")
		spec.Name = "-invalid"
		rec.run(func() { Start(rec, rt, spec) })
		if !strings.Contains(rec.fatal, "Create") || !strings.Contains(rec.fatal, "Name") {
			t.Errorf("Start with a bad name failed with %q, want it to name Create and the field", rec.fatal)
		}
		if len(rec.cleanups) != 0 {
			t.Errorf("a failed Start registered %d cleanups", len(rec.cleanups))
		}
	})
	t.Run("WaitForLogFinds", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), `echo one; echo two >&2; echo "needle found"; sleep 300`)
		e, err := WaitForLog(s.ctx(t), rt, c.ID, "needle")
		if err != nil {
			t.Fatalf("WaitForLog: %v", err)
		}
		if e.Line != "needle found" || e.Stream != gantry.Stdout || e.Time.IsZero() {
			t.Errorf("WaitForLog returned %+v, want the stdout line \"needle found\" with its time", e)
		}
		if e := RequireLog(t, rt, c.ID, "two", s.patience); e.Stream != gantry.Stderr {
			t.Errorf("RequireLog(two) returned a %s entry, want stderr", e.Stream)
		}
	})
	t.Run("WaitForLogTimeoutShowsLastLines", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), `echo first; echo second; sleep 300`)
		RequireLog(t, rt, c.ID, "second", s.patience)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond+s.h.Latency)
		defer cancel()
		_, err := WaitForLog(ctx, rt, c.ID, "never printed")
		var werr *LogWaitError
		if !errors.As(err, &werr) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitForLog past its deadline: %v, want a *LogWaitError for context.DeadlineExceeded", err)
		}
		if got := lines(werr.Last, 0); !slices.Equal(got, []string{"first", "second"}) {
			t.Errorf("LogWaitError.Last = %q, want [first second]", got)
		}
		for _, want := range []string{"never printed", c.ID, "first", "second", "deadline exceeded"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
	t.Run("WaitForLogStopped", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), `echo only; exit 2`)
		_, err := WaitForLog(s.ctx(t), rt, c.ID, "never printed")
		var werr *LogWaitError
		if !errors.As(err, &werr) || !errors.Is(err, ErrStopped) {
			t.Fatalf("WaitForLog on a container that exits: %v, want a *LogWaitError for ErrStopped", err)
		}
		if got := lines(werr.Last, 0); !slices.Equal(got, []string{"only"}) {
			t.Errorf("LogWaitError.Last = %q, want [only]", got)
		}
	})
	t.Run("RequireLogFailure", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), `echo booting; sleep 300`)
		RequireLog(t, rt, c.ID, "booting", s.patience)
		rec := &recorder{TB: t}
		rec.run(func() { RequireLog(rec, rt, c.ID, "listening", 200*time.Millisecond+s.h.Latency) })
		if !strings.Contains(rec.fatal, "listening") || !strings.Contains(rec.fatal, "booting") {
			t.Errorf("RequireLog failed with %q, want the line sought and the last line seen", rec.fatal)
		}
	})
	t.Run("RequireExit", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), "exit 5")
		wantExit(t, RequireExit(t, rt, c.ID, s.patience), 5, "")
		stuck := s.startReady(t, rt, newTag(), scriptForever)
		rec := &recorder{TB: t}
		rec.run(func() { RequireExit(rec, rt, stuck.ID, 200*time.Millisecond+s.h.Latency) })
		if !strings.Contains(rec.fatal, "did not exit") || !strings.Contains(rec.fatal, "ready") {
			t.Errorf("RequireExit failed with %q, want it to say the container did not exit and show its last lines", rec.fatal)
		}
	})
}
