package runtimetest

import (
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// healthSpec is s.spec with a CMD-SHELL healthcheck running script.
func (s *suite) healthSpec(script string, hc gantry.Healthcheck) gantry.Spec {
	spec := s.spec(newTag(), scriptForever)
	hc.Test = []string{"CMD-SHELL", script}
	spec.Healthcheck = &hc
	return spec
}

// health returns id's health, failing t when it has none.
func health(t *testing.T, rt gantry.Runtime, id string) gantry.Health {
	t.Helper()
	c := inspect(t, rt, id)
	if c.State.Health == nil {
		t.Fatalf("container %s has a healthcheck but State.Health is nil (state %+v)", id, c.State)
	}
	return *c.State.Health
}

// awaitHealth polls id until its health has status want, and returns it.
func (s *suite) awaitHealth(t *testing.T, rt gantry.Runtime, id, want string) gantry.Health {
	t.Helper()
	var last gantry.Health
	err := s.poll(s.ctx(t), func() (bool, error) {
		last = health(t, rt, id)
		return last.Status == want, nil
	})
	if err != nil {
		t.Fatalf("container %s: health %+v, want status %q: %v%s", id, last, want, err, lastLines(rt, id))
	}
	return last
}

func (s *suite) testHealth(t *testing.T) {
	s.require(t, gantry.FeatureHealthcheck)
	// interval is short, so that a test sees several probes in well
	// under a second on a local backend.
	interval := 100*time.Millisecond + s.h.Latency/2

	t.Run("Healthy", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		// The first probe runs an interval after the start: long enough
		// here to see the container starting first.
		first := 800*time.Millisecond + s.h.Latency
		c := Create(t, rt, s.healthSpec("exit 0", gantry.Healthcheck{Interval: first}))
		if h := inspect(t, rt, c.ID).State.Health; h != nil {
			t.Errorf("a created container has health %+v, want none before its first start (Docker's null)", *h)
		}
		began := time.Now()
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("Start: %v", err)
		}
		h := health(t, rt, c.ID)
		if time.Since(began) < first/2 && (h.Status != gantry.HealthStarting || h.FailingStreak != 0) {
			t.Errorf("health just after Start: %+v, want starting with no failing streak", h)
		}
		if h := s.awaitHealth(t, rt, c.ID, gantry.HealthHealthy); h.FailingStreak != 0 {
			t.Errorf("healthy with failing streak %d, want 0", h.FailingStreak)
		}
		s.stop(t, rt, c.ID, s.stopTimeout)
		if h := health(t, rt, c.ID); h.Status != gantry.HealthUnhealthy || h.FailingStreak != 0 {
			t.Errorf("health of the stopped container: %+v, want unhealthy (as Docker's, once the monitor stops) with the streak kept at 0", h)
		}
	})

	t.Run("Unhealthy", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := Start(t, rt, s.healthSpec("echo failing; exit 1", gantry.Healthcheck{Interval: interval, Retries: 2}))
		if h := s.awaitHealth(t, rt, c.ID, gantry.HealthUnhealthy); h.FailingStreak < 2 {
			t.Errorf("unhealthy with failing streak %d, want at least Retries (2)", h.FailingStreak)
		}
		// The streak goes on growing with each failed probe.
		err := s.poll(s.ctx(t), func() (bool, error) {
			h := health(t, rt, c.ID)
			return h.Status == gantry.HealthUnhealthy && h.FailingStreak >= 3, nil
		})
		if err != nil {
			t.Errorf("health %+v: the failing streak did not reach 3: %v", health(t, rt, c.ID), err)
		}
		if st := inspect(t, rt, c.ID).State; st.Status != gantry.StatusRunning {
			t.Errorf("an unhealthy container has status %q: Docker leaves it running", st.Status)
		}
	})

	t.Run("StartPeriod", func(t *testing.T) {
		t.Parallel()
		period := time.Second + 2*s.h.Latency
		t.Run("FailuresDoNotCount", func(t *testing.T) {
			t.Parallel()
			rt := s.runtime(t)
			began := time.Now()
			c := Start(t, rt, s.healthSpec("exit 1", gantry.Healthcheck{Interval: interval, Retries: 1, StartPeriod: period}))
			// Every look in the first half of the period, where several
			// probes have failed, sees a container starting.
			looks := 0
			for time.Since(began) < period/2 {
				h := health(t, rt, c.ID)
				if time.Since(began) >= period/2 {
					break
				}
				looks++
				if h.Status != gantry.HealthStarting || h.FailingStreak != 0 {
					t.Fatalf("health %v into a start period of %v: %+v, want starting with no failing streak", time.Since(began).Round(time.Millisecond), period, h)
				}
				time.Sleep(interval / 2)
			}
			if looks == 0 {
				t.Logf("Start and Inspect took longer than half the start period (%v): nothing to check within it", period/2)
			}
			if h := s.awaitHealth(t, rt, c.ID, gantry.HealthUnhealthy); h.FailingStreak < 1 {
				t.Errorf("unhealthy after the start period with failing streak %d, want at least 1", h.FailingStreak)
			}
		})
		t.Run("PassingEndsIt", func(t *testing.T) {
			t.Parallel()
			rt := s.runtime(t)
			// Healthy well within an hour's start period: the first
			// probe that passes ends it.
			c := Start(t, rt, s.healthSpec("exit 0", gantry.Healthcheck{Interval: interval, StartPeriod: time.Hour}))
			s.awaitHealth(t, rt, c.ID, gantry.HealthHealthy)
		})
	})

	t.Run("None", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		if h := inspect(t, rt, c.ID).State.Health; h != nil {
			t.Errorf("a container without a healthcheck has health %+v, want nil", *h)
		}
	})

	t.Run("ProbeSeesContainer", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		// A probe runs in the container, as an exec: it sees the
		// container's environment.
		spec := s.healthSpec(`test "$RUNTIMETEST_PROBE" = here`, gantry.Healthcheck{Interval: interval, Retries: 1})
		spec.Env = []string{"RUNTIMETEST_PROBE=here"}
		c := Start(t, rt, spec)
		s.awaitHealth(t, rt, c.ID, gantry.HealthHealthy)
	})
}
