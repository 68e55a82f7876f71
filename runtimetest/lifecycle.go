package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// scriptSlowTrap would exit 0 two seconds after SIGTERM; only a kill that
// does not wait for it yields 137.
const scriptSlowTrap = `trap 'sleep 2; exit 0' TERM; echo ready; while :; do sleep 0.1; done`

func (s *suite) testCreate(t *testing.T) {
	t.Run("StatusCreated", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		if c.ID == "" {
			t.Fatal("Create returned a container with no ID")
		}
		got := wantStatus(t, rt, c.ID, gantry.StatusCreated)
		if got.State.ExitCode != 0 || !got.State.StartedAt.IsZero() || !got.State.FinishedAt.IsZero() {
			t.Errorf("created container has run state %+v, want exit code 0 and zero times", got.State)
		}
	})
	t.Run("GeneratedName", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		spec := s.spec(newTag(), "exit 0")
		spec.Name = ""
		c := Create(t, rt, spec)
		if !gantry.ValidName(c.Name) {
			t.Fatalf("generated name %q does not follow Docker's name rule", c.Name)
		}
		if got := inspect(t, rt, c.Name); got.ID != c.ID {
			t.Errorf("Inspect(generated name %q) = %s, want %s", c.Name, got.ID, c.ID)
		}
	})
	t.Run("DuplicateName", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		spec := s.spec(tag, "exit 0")
		first := Create(t, rt, spec)
		_, err := rt.Create(s.ctx(t), spec)
		if !errors.Is(err, gantry.ErrConflict) {
			t.Fatalf("second Create with name %q: %v, want ErrConflict", spec.Name, err)
		}
		if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); !slices.Equal(ids, []string{first.ID}) {
			t.Errorf("after a refused duplicate, List = %q, want only %s", ids, first.ID)
		}
	})
	t.Run("NameFreeAfterRemove", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		spec := s.spec(newTag(), "exit 0")
		first := Create(t, rt, spec)
		if err := rt.Remove(s.ctx(t), first.ID, gantry.RemoveOptions{}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		second := Create(t, rt, spec)
		if second.ID == first.ID {
			t.Errorf("a new container reuses the removed one's ID %s", first.ID)
		}
	})
}

func (s *suite) testStart(t *testing.T) {
	t.Run("Transitions", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), scriptTrapTerm)
		wantStatus(t, rt, c.ID, gantry.StatusCreated)
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start: %v", err)
		}
		running := wantStatus(t, rt, c.ID, gantry.StatusRunning)
		if running.State.StartedAt.Before(running.Created) {
			t.Errorf("StartedAt %v is before Created %v", running.State.StartedAt, running.Created)
		}
		if !running.State.FinishedAt.IsZero() {
			t.Errorf("running container has FinishedAt %v", running.State.FinishedAt)
		}
		RequireLog(t, rt, c.ID, "ready", s.patience)
		s.stop(t, rt, c.ID, s.patience)
		exited := wantStatus(t, rt, c.ID, gantry.StatusExited)
		s.wantTrapExit0(t, exited.State)
		if stampedBefore(exited.State.FinishedAt, exited.State.StartedAt) {
			t.Errorf("FinishedAt %v is before StartedAt %v", exited.State.FinishedAt, exited.State.StartedAt)
		}
	})
	t.Run("RunToCompletion", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), "echo done")
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 0, "")
		wantStatus(t, rt, c.ID, gantry.StatusExited)
		wantLines(t, "logs", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"done"})
	})
	t.Run("StdinAtEOF", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), `if read -r line; then echo "read $line"; else echo eof; fi`)
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 0, "")
		wantLines(t, "main process reading stdin without OpenStdin", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"eof"})
	})
	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		before := inspect(t, rt, c.ID)
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start of a running container: %v, want success", err)
		}
		after := wantStatus(t, rt, c.ID, gantry.StatusRunning)
		if !after.State.StartedAt.Equal(before.State.StartedAt) || after.RestartCount != before.RestartCount {
			t.Errorf("Start of a running container restarted it: StartedAt %v -> %v, RestartCount %d -> %d",
				before.State.StartedAt, after.State.StartedAt, before.RestartCount, after.RestartCount)
		}
		s.stop(t, rt, c.ID, 0)
		if got := lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0); !slices.Equal(got, []string{"ready"}) {
			t.Errorf("logs %q, want one run's [ready]", got)
		}
	})
	t.Run("AgainAfterExit", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), "echo run; exit 3")
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 3, "")
		first := wantStatus(t, rt, c.ID, gantry.StatusExited)
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start of an exited container: %v", err)
		}
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 3, "")
		second := wantStatus(t, rt, c.ID, gantry.StatusExited)
		if second.ID != first.ID || second.Name != first.Name {
			t.Errorf("second run changed identity: %s %q -> %s %q", first.ID, first.Name, second.ID, second.Name)
		}
		if stampedBefore(second.State.StartedAt, first.State.FinishedAt) {
			t.Errorf("second run StartedAt %v is before the first run's FinishedAt %v", second.State.StartedAt, first.State.FinishedAt)
		}
		if second.RestartCount != 0 {
			t.Errorf("RestartCount after a second Start = %d, want 0: Docker counts only a restart policy's restarts", second.RestartCount)
		}
		wantLines(t, "logs of two runs", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"run", "run"})
	})
}

// wantStopExit7 checks the exit status of a container running
// scriptStopExits7 that was stopped: 7. A backend whose Stop is partial
// may lose the exit code of a stopped run and report 137 SIGKILL with an
// error text instead; its Stop note says so.
func (s *suite) wantStopExit7(t *testing.T, st gantry.ExitStatus) {
	t.Helper()
	if s.caps.Level(gantry.FeatureStop) != gantry.Full && st.ExitCode == 137 && st.Signal == "SIGKILL" && st.Error != "" {
		t.Logf("a stopped run's exit 7 reads %+v (Stop partial: %s)", st, s.caps[gantry.FeatureStop].Note)
		return
	}
	wantExit(t, st, 7, "")
}

// wantTrapExit0 checks the state of a container whose TERM trap exited 0
// when it was stopped: exit code 0. A backend whose Stop is partial may
// be unable to tell a 0 from no exit code at all, and report 137 SIGKILL
// instead; its Stop note says so.
func (s *suite) wantTrapExit0(t *testing.T, st gantry.State) {
	t.Helper()
	switch {
	case st.ExitCode == 0 && st.Signal == "":
	case s.caps.Level(gantry.FeatureStop) != gantry.Full && st.ExitCode == 137 && st.Signal == "SIGKILL":
		t.Logf("a trap's exit 0 reads 137 (Stop partial: %s)", s.caps[gantry.FeatureStop].Note)
	default:
		t.Errorf("stopped trapping container: exit code %d signal %q, want 0 and none", st.ExitCode, st.Signal)
	}
}

func (s *suite) testStop(t *testing.T) {
	s.require(t, gantry.FeatureStop)
	t.Run("ZeroTimeoutKills", func(t *testing.T) {
		s.require(t, gantry.FeatureStopTimeout)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptSlowTrap)
		s.stop(t, rt, c.ID, 0)
		wantStatus(t, rt, c.ID, gantry.StatusExited)
		s.wantStopTimeout(t, rt, c.ID, 137, "SIGKILL")
	})
	t.Run("PositiveTimeoutLetsTrapExit", func(t *testing.T) {
		s.require(t, gantry.FeatureStopTimeout)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptTrapTerm)
		s.stop(t, rt, c.ID, s.patience)
		got := wantStatus(t, rt, c.ID, gantry.StatusExited)
		s.wantTrapExit0(t, got.State)
		RequireLog(t, rt, c.ID, "got TERM", s.patience)
	})
	t.Run("PositiveTimeoutThenKill", func(t *testing.T) {
		s.require(t, gantry.FeatureStopTimeout)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptIgnoreTerm)
		s.stop(t, rt, c.ID, s.stopTimeout)
		wantStatus(t, rt, c.ID, gantry.StatusExited)
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 137, "SIGKILL")
	})
	t.Run("NegativeTimeoutWaits", func(t *testing.T) {
		s.require(t, gantry.FeatureStopTimeout)
		t.Parallel()
		rt := s.runtime(t)
		// The spec's own timeout of 0 would kill at once; the option
		// overrides it and waits for the slow trap.
		spec := s.spec(newTag(), `trap 'sleep 1; echo leaving; exit 7' TERM; echo ready; while :; do sleep 0.1; done`)
		spec.StopTimeout = new(time.Duration(0))
		c := Start(t, rt, spec)
		RequireLog(t, rt, c.ID, "ready", s.patience)
		s.stop(t, rt, c.ID, -1)
		wantStatus(t, rt, c.ID, gantry.StatusExited)
		s.wantStopTimeout(t, rt, c.ID, 7, "")
	})
	t.Run("SpecStopTimeout", func(t *testing.T) {
		s.require(t, gantry.FeatureStopTimeout)
		t.Parallel()
		rt := s.runtime(t)
		spec := s.spec(newTag(), scriptSlowTrap)
		spec.StopTimeout = new(time.Duration(0))
		c := Start(t, rt, spec)
		RequireLog(t, rt, c.ID, "ready", s.patience)
		if err := rt.Stop(s.ctx(t), c.ID, gantry.StopOptions{}); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		s.wantStopTimeout(t, rt, c.ID, 137, "SIGKILL")
	})
	t.Run("UntrappedTerm", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		s.stop(t, rt, c.ID, s.patience)
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 143, "SIGTERM")
	})
	t.Run("SpecStopSignal", func(t *testing.T) {
		s.require(t, gantry.FeatureSignals)
		t.Parallel()
		rt := s.runtime(t)
		spec := s.spec(newTag(), `trap 'exit 5' USR1; echo ready; while :; do sleep 0.1; done`)
		spec.StopSignal = "SIGUSR1"
		c := Start(t, rt, spec)
		RequireLog(t, rt, c.ID, "ready", s.patience)
		s.stop(t, rt, c.ID, s.patience)
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 5, "")
	})
	t.Run("OptionSignal", func(t *testing.T) {
		s.require(t, gantry.FeatureSignals)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), `trap 'exit 6' USR2; echo ready; while :; do sleep 0.1; done`)
		timeout := s.patience
		if err := rt.Stop(s.ctx(t), c.ID, gantry.StopOptions{Signal: "USR2", Timeout: &timeout}); err != nil {
			t.Fatalf("Stop with signal USR2: %v", err)
		}
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 6, "")
	})
	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		created := s.create(t, rt, tag, "exit 3")
		s.stop(t, rt, created.ID, s.stopTimeout)
		wantStatus(t, rt, created.ID, gantry.StatusCreated)

		exited := s.start(t, rt, tag, "exit 3")
		wantExit(t, s.wait(t, rt, exited.ID, gantry.WaitNotRunning), 3, "")
		before := inspect(t, rt, exited.ID)
		s.stop(t, rt, exited.ID, s.stopTimeout)
		s.stop(t, rt, exited.ID, 0)
		after := wantStatus(t, rt, exited.ID, gantry.StatusExited)
		if after.State.ExitCode != 3 || !after.State.FinishedAt.Equal(before.State.FinishedAt) {
			t.Errorf("Stop of an exited container changed its state: %+v -> %+v", before.State, after.State)
		}
	})
}

// wantStopTimeout checks how a Stop whose timeout decides the outcome
// ended id. With stop-timeout declared full the timeout is kept exactly:
// the exit status is code and signal. Declared partial, the timing is not
// promised (the note says why), only that the stop ends the container
// with an exit status Wait and Inspect agree on.
func (s *suite) wantStopTimeout(t *testing.T, rt gantry.Runtime, id string, code int, signal string) {
	t.Helper()
	st := s.exited(t, rt, id)
	if s.caps.Level(gantry.FeatureStopTimeout) == gantry.Full {
		wantExit(t, st, code, signal)
	}
}

func (s *suite) testKill(t *testing.T) {
	s.require(t, gantry.FeatureKill)
	t.Run("DefaultSIGKILL", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		// The trap would exit 0 on SIGTERM, so 137 shows that the default
		// signal is SIGKILL. A partial Kill may deliver a catchable
		// signal first (its note says so); what it promises is checked
		// on a process that handles none.
		script := scriptTrapTerm
		if s.caps.Level(gantry.FeatureKill) != gantry.Full {
			script = scriptForever
		}
		c := s.startReady(t, rt, newTag(), script)
		if err := rt.Kill(s.ctx(t), c.ID, ""); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		s.wantKilled(t, rt, c.ID)
	})
	for _, tc := range []struct {
		signal string
		code   int
		name   string
	}{
		{"SIGTERM", 143, "SIGTERM"},
		{"TERM", 143, "SIGTERM"},
		{"15", 143, "SIGTERM"},
		{"sigterm", 143, "SIGTERM"},
		{"KILL", 137, "SIGKILL"},
		{"9", 137, "SIGKILL"},
	} {
		t.Run("Signal="+tc.signal, func(t *testing.T) {
			if tc.name != "SIGKILL" {
				s.require(t, gantry.FeatureSignals)
			}
			t.Parallel()
			rt := s.runtime(t)
			c := s.startReady(t, rt, newTag(), scriptForever)
			if err := rt.Kill(s.ctx(t), c.ID, tc.signal); err != nil {
				t.Fatalf("Kill(%q): %v", tc.signal, err)
			}
			if tc.name == "SIGKILL" && s.caps.Level(gantry.FeatureKill) != gantry.Full {
				s.wantKilled(t, rt, c.ID)
				return
			}
			wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), tc.code, tc.name)
		})
	}
	t.Run("TrappedUSR1", func(t *testing.T) {
		s.require(t, gantry.FeatureSignals)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), `trap 'echo got USR1' USR1; echo ready; while :; do sleep 0.1; done`)
		if err := rt.Kill(s.ctx(t), c.ID, "SIGUSR1"); err != nil {
			t.Fatalf("Kill(SIGUSR1): %v", err)
		}
		RequireLog(t, rt, c.ID, "got USR1", s.patience)
		wantStatus(t, rt, c.ID, gantry.StatusRunning)
		if err := rt.Kill(s.ctx(t), c.ID, ""); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 137, "SIGKILL")
	})
	t.Run("NotRunning", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		created := s.create(t, rt, tag, "exit 3")
		exited := s.start(t, rt, tag, "exit 3")
		s.wait(t, rt, exited.ID, gantry.WaitNotRunning)
		for _, tc := range []struct {
			id   string
			want gantry.Status
		}{{created.ID, gantry.StatusCreated}, {exited.ID, gantry.StatusExited}} {
			if err := rt.Kill(s.ctx(t), tc.id, ""); !errors.Is(err, gantry.ErrConflict) {
				t.Errorf("Kill of a %s container: %v, want ErrConflict", tc.want, err)
			}
			got := wantStatus(t, rt, tc.id, tc.want)
			if tc.want == gantry.StatusExited && got.State.ExitCode != 3 {
				t.Errorf("refused Kill changed the exit code to %d", got.State.ExitCode)
			}
		}
	})
	t.Run("InvalidSignal", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		for _, sig := range []string{"SIGNOPE", "0", "65"} {
			if err := rt.Kill(s.ctx(t), c.ID, sig); !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Errorf("Kill(%q): %v, want ErrInvalidArgument", sig, err)
			}
		}
		wantStatus(t, rt, c.ID, gantry.StatusRunning)
	})
}

func (s *suite) testRemove(t *testing.T) {
	s.require(t, gantry.FeatureRemove)
	gone := func(t *testing.T, rt gantry.Runtime, tag, id string) {
		t.Helper()
		if _, err := rt.Inspect(s.ctx(t), id); !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
		}
		if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
			t.Errorf("List after Remove = %q, want none", ids)
		}
	}
	t.Run("Created", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		c := s.create(t, rt, tag, "exit 0")
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		gone(t, rt, tag, c.ID)
	})
	t.Run("Exited", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		c := s.start(t, rt, tag, "exit 4")
		s.wait(t, rt, c.ID, gantry.WaitNotRunning)
		if err := rt.Remove(s.ctx(t), c.Name, gantry.RemoveOptions{}); err != nil {
			t.Fatalf("Remove by name: %v", err)
		}
		gone(t, rt, tag, c.ID)
	})
	t.Run("RunningWithoutForce", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{}); !errors.Is(err, gantry.ErrConflict) {
			t.Fatalf("Remove of a running container without Force: %v, want ErrConflict", err)
		}
		wantStatus(t, rt, c.ID, gantry.StatusRunning)
	})
	t.Run("RunningWithForce", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		c := s.startReady(t, rt, tag, scriptTrapTerm)
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{Force: true}); err != nil {
			t.Fatalf("Remove with Force: %v", err)
		}
		gone(t, rt, tag, c.ID)
	})
	t.Run("Twice", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{Force: true}); !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("second Remove: %v, want ErrNotFound", err)
		}
	})
}

// asyncWait is a wait registered with the backend, running in the
// background.
type asyncWait struct {
	ch <-chan gantry.WaitResult
}

// waitAsync registers a wait for cond with gantry.RegisterWait, which
// returns once the backend holds it: whatever the test does next is seen
// by the wait. The result arrives on the returned wait's channel.
func (s *suite) waitAsync(t *testing.T, rt gantry.Runtime, id string, cond gantry.WaitCondition) *asyncWait {
	t.Helper()
	ch, err := gantry.RegisterWait(s.ctx(t), rt, id, cond)
	if err != nil {
		t.Fatalf("RegisterWait(%s, %q): %v", id, cond, err)
	}
	return &asyncWait{ch: ch}
}

// pending fails t if the wait has already returned.
func (s *suite) pending(t *testing.T, w *asyncWait, what string) {
	t.Helper()
	select {
	case r := <-w.ch:
		t.Fatalf("%s returned early: %+v, %v", what, r.Status, r.Err)
	default:
	}
}

// result receives the wait's outcome within the suite's patience.
func (s *suite) result(t *testing.T, w *asyncWait, what string) gantry.ExitStatus {
	t.Helper()
	select {
	case r := <-w.ch:
		if r.Err != nil {
			t.Fatalf("%s: %v", what, r.Err)
		}
		return r.Status
	case <-time.After(s.patience):
		t.Fatalf("%s did not return within %v", what, s.patience)
	}
	return gantry.ExitStatus{}
}

func (s *suite) testWait(t *testing.T) {
	s.require(t, gantry.FeatureWait)
	t.Run("NotRunningOnCreated", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 3")
		for _, cond := range []gantry.WaitCondition{gantry.WaitNotRunning, ""} {
			wantExit(t, s.wait(t, rt, c.ID, cond), 0, "")
		}
		wantStatus(t, rt, c.ID, gantry.StatusCreated)
	})
	t.Run("NotRunningOnExited", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), "exit 3")
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 3, "")
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 3, "")
	})
	t.Run("NotRunningOnRunning", func(t *testing.T) {
		s.require(t, gantry.FeatureStop)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptStopExits7)
		ch := s.waitAsync(t, rt, c.ID, gantry.WaitNotRunning)
		s.pending(t, ch, "Wait(not-running) on a running container")
		s.stop(t, rt, c.ID, s.patience)
		s.wantStopExit7(t, s.result(t, ch, "Wait(not-running)"))
	})
	for _, before := range []gantry.Status{gantry.StatusCreated, gantry.StatusExited} {
		t.Run("NextExitStartedWhile"+title(before), func(t *testing.T) {
			t.Parallel()
			rt := s.runtime(t)
			c := s.create(t, rt, newTag(), "echo run; exit 42")
			if before == gantry.StatusExited {
				if err := rt.Start(s.ctx(t), c.ID); err != nil {
					t.Fatalf("Start: %v", err)
				}
				s.wait(t, rt, c.ID, gantry.WaitNotRunning)
			}
			ch := s.waitAsync(t, rt, c.ID, gantry.WaitNextExit)
			s.pending(t, ch, fmt.Sprintf("Wait(next-exit) on a %s container", before))
			if err := rt.Start(s.ctx(t), c.ID); err != nil {
				t.Fatalf("Start: %v", err)
			}
			wantExit(t, s.result(t, ch, "Wait(next-exit)"), 42, "")
		})
	}
	t.Run("NextExitOnRunning", func(t *testing.T) {
		s.require(t, gantry.FeatureStop)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptStopExits7)
		ch := s.waitAsync(t, rt, c.ID, gantry.WaitNextExit)
		s.pending(t, ch, "Wait(next-exit) on a running container")
		s.stop(t, rt, c.ID, s.patience)
		s.wantStopExit7(t, s.result(t, ch, "Wait(next-exit)"))
	})
	t.Run("NextExitThenForceRemove", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		ch := s.waitAsync(t, rt, c.ID, gantry.WaitNextExit)
		s.pending(t, ch, "Wait(next-exit)")
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{Force: true}); err != nil {
			t.Fatalf("Remove(Force): %v", err)
		}
		const what = "Wait(next-exit) across a forced removal"
		if s.caps.Level(gantry.FeatureWait) == gantry.Full {
			wantExit(t, s.result(t, ch, what), 137, "SIGKILL")
			return
		}
		// A partial Wait may lose the exit status with the container
		// (its note says so), but it returns rather than hang.
		select {
		case r := <-ch.ch:
			switch {
			case r.Err == nil && r.Status.ExitCode == 0:
				t.Errorf("%s (partial: %s): exit status %+v, want a non-zero exit code or ErrNotFound", what, s.caps[gantry.FeatureWait].Note, r.Status)
			case r.Err != nil && !errors.Is(r.Err, gantry.ErrNotFound):
				t.Errorf("%s (partial: %s): %v, want an exit status or ErrNotFound", what, s.caps[gantry.FeatureWait].Note, r.Err)
			}
		case <-time.After(s.patience):
			t.Fatalf("%s did not return within %v", what, s.patience)
		}
	})
	t.Run("NextExitEndsAtRemoval", func(t *testing.T) {
		// Removal wakes a next-exit wait on a container that is not
		// running, with its last exit status (0 if it never ran).
		for _, ran := range []bool{false, true} {
			t.Run(fmt.Sprintf("Ran=%v", ran), func(t *testing.T) {
				t.Parallel()
				rt := s.runtime(t)
				c := s.create(t, rt, newTag(), "exit 3")
				want := 0
				if ran {
					if err := rt.Start(s.ctx(t), c.ID); err != nil {
						t.Fatalf("Start: %v", err)
					}
					wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 3, "")
					want = 3
				}
				ch := s.waitAsync(t, rt, c.ID, gantry.WaitNextExit)
				s.pending(t, ch, "Wait(next-exit)")
				if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{}); err != nil {
					t.Fatalf("Remove: %v", err)
				}
				wantExit(t, s.result(t, ch, "Wait(next-exit) across a removal"), want, "")
			})
		}
	})
	t.Run("RemovedRunning", func(t *testing.T) {
		s.require(t, gantry.FeatureStop)
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptStopExits7)
		ch := s.waitAsync(t, rt, c.ID, gantry.WaitRemoved)
		s.pending(t, ch, "Wait(removed) on a running container")
		s.stop(t, rt, c.ID, s.patience)
		s.wait(t, rt, c.ID, gantry.WaitNotRunning)
		s.pending(t, ch, "Wait(removed) on an exited container")
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		s.wantStopExit7(t, s.result(t, ch, "Wait(removed)"))
	})
	t.Run("RemovedCreated", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 3")
		ch := s.waitAsync(t, rt, c.ID, gantry.WaitRemoved)
		s.pending(t, ch, "Wait(removed) on a created container")
		if err := rt.Remove(s.ctx(t), c.ID, gantry.RemoveOptions{}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		wantExit(t, s.result(t, ch, "Wait(removed)"), 0, "")
	})
	t.Run("ContextEnds", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait past its context's deadline: %v, want context.DeadlineExceeded", err)
		}
		wantStatus(t, rt, c.ID, gantry.StatusRunning)
	})
}

// title returns a status with its first letter in upper case, for names.
func title(st gantry.Status) string {
	if st == "" {
		return ""
	}
	return string(st[0]-'a'+'A') + string(st[1:])
}

func (s *suite) testExitCode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		code   int
		signal string
	}{
		{"0", "exit 0", 0, ""},
		{"1", "exit 1", 1, ""},
		{"3", "echo bye; exit 3", 3, ""},
		{"42", "exit 42", 42, ""},
		{"255", "exit 255", 255, ""},
		{"FailedCommand", "false", 1, ""},
		{"CommandNotFound", "no-such-command-runtimetest", 127, ""},
		{"SelfSIGTERM", "kill -TERM $$; sleep 5", 143, "SIGTERM"},
		{"SelfSIGKILL", "kill -KILL $$; sleep 5", 137, "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := s.runtime(t)
			c := s.start(t, rt, newTag(), tc.script)
			wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), tc.code, tc.signal)
			got := wantStatus(t, rt, c.ID, gantry.StatusExited)
			if got.State.ExitCode != tc.code || got.State.Signal != tc.signal {
				t.Errorf("Inspect: exit code %d signal %q, want %d %q", got.State.ExitCode, got.State.Signal, tc.code, tc.signal)
			}
		})
	}
}
