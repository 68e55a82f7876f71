package runtimetest

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gantryhq/gantry"
)

// testDockerDetails holds the backends to behaviours of Docker that were
// measured on a real engine, with containers under an init (docker run
// --init), which is gantry's semantics: each subtest names the behaviour.
func (s *suite) testDockerDetails(t *testing.T) {
	t.Run("SignalReachesMainProcessOnly", func(t *testing.T) {
		// The init forwards a signal to the main process only: a child
		// that traps SIGTERM never sees it, and dies with the container.
		s.require(t, gantry.FeatureStop)
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), `sh -c 'trap "echo child got TERM; exit 0" TERM; echo child ready; while :; do sleep 0.1; done' & echo ready; wait`)
		RequireLog(t, rt, c.ID, "child ready", s.patience)
		RequireLog(t, rt, c.ID, "ready", s.patience)
		s.stop(t, rt, c.ID, s.patience)
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 143, "SIGTERM")
		for _, l := range lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0) {
			if strings.Contains(l, "child got TERM") {
				t.Errorf("a child of the main process received the stop signal (logged %q)", l)
			}
		}
	})
	t.Run("TimestampsHaveNineDigits", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `echo a; echo b >&2`)
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{Timestamps: true})
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		var out bytes.Buffer
		if err := gantry.CopyLogs(&out, &out, r); err != nil {
			t.Fatalf("CopyLogs: %v", err)
		}
		stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z [ab]$`)
		for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if !stamp.MatchString(l) {
				t.Errorf("line %q: want a UTC time with nine fractional digits, a space and the text", l)
			}
		}
	})
	t.Run("TailBeforeStream", func(t *testing.T) {
		// Docker takes the last lines of both streams, then keeps the
		// stream asked for.
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `echo o1; sleep 0.1; echo e1 >&2; sleep 0.1; echo o2; sleep 0.1; echo e2 >&2; sleep 0.1; echo e3 >&2; sleep 0.1; echo o3`)
		wantLines(t, "Logs(Tail 2, Stderr)", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{Tail: 2, Stderr: true}), 0), []string{"e3"})
		wantLines(t, "Logs(Tail 3, Stdout)", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{Tail: 3, Stdout: true}), 0), []string{"o3"})
	})
	t.Run("LongLineSplitAt16KiB", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `head -c 20000 /dev/zero | tr '\0' x; echo; echo after`)
		es := s.logs(t, rt, c.ID, gantry.LogsOptions{Stdout: true})
		var got []string
		for _, e := range es {
			got = append(got, fmt.Sprintf("%d partial=%v", len(e.Line), e.Partial))
		}
		if want := []string{"16384 partial=true", "3616 partial=false", "5 partial=false"}; !slices.Equal(got, want) {
			t.Errorf("a 20,000-byte line came back as %q, want %q", got, want)
		}
		var out bytes.Buffer
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{Stdout: true})
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if err := gantry.CopyLogs(&out, nil, r); err != nil {
			t.Fatalf("CopyLogs: %v", err)
		}
		if want := strings.Repeat("x", 20000) + "\nafter\n"; out.String() != want {
			t.Errorf("CopyLogs wrote %d bytes, want the %d the container wrote", out.Len(), len(want))
		}
	})
	t.Run("DefaultWorkingDirIsRoot", func(t *testing.T) {
		// With no WorkingDir, Docker uses the image's WORKDIR, and "/"
		// for an image without one (the suite's image has none).
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `pwd`)
		wantLines(t, "pwd", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"/"})
	})
	t.Run("LogTimesNotBeforeStart", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `echo first; echo second >&2`)
		for _, e := range s.logs(t, rt, c.ID, gantry.LogsOptions{}) {
			if stampedBefore(e.Time, c.State.StartedAt) {
				t.Errorf("line %q at %v is older than StartedAt %v", e.Line, e.Time, c.State.StartedAt)
			}
		}
	})
	t.Run("FinishedAtKeptWhileRunningAgain", func(t *testing.T) {
		// Docker keeps the previous run's FinishedAt until the next exit.
		s.require(t, gantry.FeatureStop)
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		marker := "/tmp/runtimetest-" + tag
		c := s.start(t, rt, tag, `if [ -e `+marker+` ]; then rm `+marker+`; echo ready; while :; do sleep 0.1; done; fi; touch `+marker+`; exit 3`)
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 3, "")
		first := wantStatus(t, rt, c.ID, gantry.StatusExited)
		if first.State.FinishedAt.IsZero() {
			t.Fatalf("FinishedAt of an exited container is zero")
		}
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		RequireLog(t, rt, c.ID, "ready", s.patience)
		again := wantStatus(t, rt, c.ID, gantry.StatusRunning)
		if !again.State.FinishedAt.Equal(first.State.FinishedAt) {
			t.Errorf("FinishedAt while running again = %v, want the first run's %v", again.State.FinishedAt, first.State.FinishedAt)
		}
		s.stop(t, rt, c.ID, s.patience)
	})
	t.Run("EntrypointCannotRun", func(t *testing.T) {
		// Under an init, a command that cannot be executed does not fail
		// Start: the container exits 127 (no such file) or 126 (not
		// executable), and the reason is on stderr.
		for _, tc := range []struct {
			name       string
			entrypoint string
			code       int
		}{
			{"Missing", "no-such-command-runtimetest", 127},
			{"NotExecutable", "/", 126},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				rt := s.runtime(t)
				spec := s.spec(newTag(), "")
				spec.Entrypoint, spec.Cmd = []string{tc.entrypoint}, nil
				c := Create(t, rt, spec)
				if err := rt.Start(s.ctx(t), c.ID); err != nil {
					t.Fatalf("Start of an entrypoint that cannot run: %v, want success (the init reports it)", err)
				}
				st := s.exited(t, rt, c.ID)
				if s.caps.Level(gantry.FeatureStart) != gantry.Full {
					if st.ExitCode == 0 {
						t.Errorf("Start (partial: %s): exit status %+v, want non-zero", s.caps[gantry.FeatureStart].Note, st)
					}
					return
				}
				wantExit(t, st, tc.code, "")
			})
		}
	})
}
