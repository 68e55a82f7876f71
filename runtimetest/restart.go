package runtimetest

import (
	"slices"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// policySpec is s.spec of script with the restart policy.
func (s *suite) policySpec(script string, p gantry.RestartPolicy) gantry.Spec {
	spec := s.spec(newTag(), script)
	spec.RestartPolicy = p
	return spec
}

// runs counts the "run" lines id has logged: one per run of the suite's
// restart scripts.
func (s *suite) runs(t *testing.T, rt gantry.Runtime, id string) int {
	t.Helper()
	n := 0
	for _, l := range lines(s.logs(t, rt, id, gantry.LogsOptions{}), 0) {
		if l == "run" {
			n++
		}
	}
	return n
}

// awaitRestarts polls id until done says its state and run count are
// what the test waits for, and returns them.
func (s *suite) awaitRestarts(t *testing.T, rt gantry.Runtime, id, what string, done func(c *gantry.Container, runs int) bool) (*gantry.Container, int) {
	t.Helper()
	var c *gantry.Container
	var n int
	err := s.poll(s.ctx(t), func() (bool, error) {
		c = inspect(t, rt, id)
		n = s.runs(t, rt, id)
		switch c.State.Status {
		case gantry.StatusRunning, gantry.StatusRestarting, gantry.StatusExited:
		default:
			t.Fatalf("container %s with restart policy %+v: status %q", id, c.Spec.RestartPolicy, c.State.Status)
		}
		if c.State.Status == gantry.StatusRestarting && !c.State.Running {
			t.Fatalf("a restarting container has Running false: Docker counts it running")
		}
		return done(c, n), nil
	})
	if err != nil {
		t.Fatalf("container %s: status %q, RestartCount %d, %d runs: want %s: %v%s", id, c.State.Status, c.RestartCount, n, what, err, lastLines(rt, id))
	}
	return c, n
}

// settle is long enough for a restart that should not happen to show.
// Docker counts a restart (and reads restarting) as soon as it handles the
// exit, before its 100 ms delay; a wait or a stop returns once it has.
func (s *suite) settle() { time.Sleep(300*time.Millisecond + 2*s.h.Latency) }

// stays fails t unless id is still exited, with the same RestartCount and
// runs, after settle.
func (s *suite) stays(t *testing.T, rt gantry.Runtime, id string, count, runs int) {
	t.Helper()
	s.settle()
	c := wantStatus(t, rt, id, gantry.StatusExited)
	if n := s.runs(t, rt, id); c.RestartCount != count || n != runs {
		t.Errorf("after a pause: RestartCount %d with %d runs, want it left at %d with %d runs", c.RestartCount, n, count, runs)
	}
}

func (s *suite) testRestartPolicy(t *testing.T) {
	s.require(t, gantry.FeatureRestartPolicy)

	t.Run("OnFailure", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := Start(t, rt, s.policySpec("echo run; exit 3", gantry.RestartPolicy{Name: gantry.RestartOnFailure, MaxRetries: 2}))
		done, n := s.awaitRestarts(t, rt, c.ID, "exited after 2 restarts", func(c *gantry.Container, runs int) bool {
			if c.RestartCount > 2 {
				t.Fatalf("RestartCount %d with on-failure:2", c.RestartCount)
			}
			return c.State.Status == gantry.StatusExited && c.RestartCount == 2 && runs == 3
		})
		if done.State.ExitCode != 3 || done.State.Running {
			t.Errorf("state after the last restart: %+v, want exited with code 3", done.State)
		}
		s.stays(t, rt, c.ID, 2, n)

		// Start sets the count back to 0, as Docker's does: the policy
		// restarts it twice again.
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start: %v", err)
		}
		s.awaitRestarts(t, rt, c.ID, "exited after 2 more restarts", func(c *gantry.Container, runs int) bool {
			return c.State.Status == gantry.StatusExited && c.RestartCount == 2 && runs == 6
		})
	})

	for _, name := range []string{gantry.RestartAlways, gantry.RestartUnlessStopped} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rt := s.runtime(t)
			// It exits 0, which on-failure would not restart.
			c := Start(t, rt, s.policySpec("echo run; exit 0", gantry.RestartPolicy{Name: name}))
			s.awaitRestarts(t, rt, c.ID, "2 restarts or more", func(c *gantry.Container, runs int) bool {
				return c.RestartCount >= 2 && runs >= 3
			})
			// Stop ends it whether it runs or waits for its restart, and
			// nothing starts it again.
			s.stop(t, rt, c.ID, s.stopTimeout)
			stopped := wantStatus(t, rt, c.ID, gantry.StatusExited)
			s.stays(t, rt, c.ID, stopped.RestartCount, s.runs(t, rt, c.ID))
		})
	}

	t.Run("NoRestart", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			policy gantry.RestartPolicy
			script string
			code   int
		}{
			{"Empty", gantry.RestartPolicy{}, "echo run; exit 1", 1},
			{"No", gantry.RestartPolicy{Name: gantry.RestartNo}, "echo run; exit 1", 1},
			{"OnFailureAfterSuccess", gantry.RestartPolicy{Name: gantry.RestartOnFailure}, "echo run; exit 0", 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				rt := s.runtime(t)
				spec := s.policySpec(tc.script, tc.policy)
				c := Start(t, rt, spec)
				wantExit(t, s.exited(t, rt, c.ID), tc.code, "")
				s.stays(t, rt, c.ID, 0, 1)
				if got := inspect(t, rt, c.ID).Spec.RestartPolicy; got != tc.policy {
					t.Errorf("Inspect: RestartPolicy %+v, want %+v as given", got, tc.policy)
				}
			})
		}
	})

	t.Run("WaitSeesEveryExit", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := Create(t, rt, s.policySpec("echo run; exit 3", gantry.RestartPolicy{Name: gantry.RestartOnFailure, MaxRetries: 1}))
		ch := s.waitAsync(t, rt, c.ID, gantry.WaitNextExit)
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start: %v", err)
		}
		// As Docker's, a wait for the next exit returns at the first
		// one, though the policy restarts the container.
		wantExit(t, s.result(t, ch, "Wait(next-exit)"), 3, "")
		s.awaitRestarts(t, rt, c.ID, "exited after 1 restart", func(c *gantry.Container, runs int) bool {
			return c.State.Status == gantry.StatusExited && c.RestartCount == 1 && runs == 2
		})
		got := lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0)
		if !slices.Equal(got, []string{"run", "run"}) {
			t.Errorf("logs %q, want one run line per run", got)
		}
	})
}
