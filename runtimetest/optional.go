package runtimetest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

func (s *suite) testRestart(t *testing.T) {
	s.require(t, gantry.FeatureRestart)
	t.Run("Running", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptTrapTerm)
		before := inspect(t, rt, c.ID)
		if err := gantry.Restart(s.ctx(t), rt, c.Name, gantry.StopOptions{Timeout: &s.patience}); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		after := wantStatus(t, rt, c.ID, gantry.StatusRunning)
		if after.ID != before.ID || after.Name != before.Name {
			t.Errorf("Restart changed identity: %s %q -> %s %q", before.ID, before.Name, after.ID, after.Name)
		}
		if !after.State.StartedAt.After(before.State.StartedAt) || after.RestartCount != before.RestartCount {
			t.Errorf("Restart: StartedAt %v -> %v, RestartCount %d -> %d; want a later start and the same count (Docker counts only a restart policy's restarts)",
				before.State.StartedAt, after.State.StartedAt, before.RestartCount, after.RestartCount)
		}
		if err := s.poll(s.ctx(t), func() (bool, error) {
			got := lines(s.logs(t, rt, c.ID, gantry.LogsOptions{Stdout: true}), 0)
			return slices.Equal(got, []string{"ready", "got TERM", "ready"}), nil
		}); err != nil {
			t.Errorf("logs after Restart: %v; want ready, got TERM, ready%s", err, lastLines(rt, c.ID))
		}
	})
	t.Run("Exited", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), "echo run; exit 3")
		s.wait(t, rt, c.ID, gantry.WaitNotRunning)
		ch := s.waitAsync(t, rt, c.ID, gantry.WaitNextExit)
		s.pending(t, ch, "Wait(next-exit)")
		if err := gantry.Restart(s.ctx(t), rt, c.ID, gantry.StopOptions{Timeout: &s.stopTimeout}); err != nil {
			t.Fatalf("Restart of an exited container: %v", err)
		}
		wantExit(t, s.result(t, ch, "Wait(next-exit) across Restart"), 3, "")
		wantLines(t, "logs", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"run", "run"})
	})
}

func (s *suite) testPause(t *testing.T) {
	s.require(t, gantry.FeaturePause)
	t.Run("PauseUnpause", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		ctx := s.ctx(t)
		if err := gantry.Pause(ctx, rt, c.ID); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		paused := wantStatus(t, rt, c.ID, gantry.StatusPaused)
		if !paused.State.Paused {
			t.Errorf("paused container has State.Paused false")
		}
		if err := gantry.Pause(ctx, rt, c.ID); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Pause of a paused container: %v, want ErrConflict", err)
		}
		if err := gantry.Unpause(ctx, rt, c.ID); err != nil {
			t.Fatalf("Unpause: %v", err)
		}
		if resumed := wantStatus(t, rt, c.ID, gantry.StatusRunning); resumed.State.Paused {
			t.Errorf("unpaused container has State.Paused true")
		}
		if err := gantry.Unpause(ctx, rt, c.ID); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Unpause of a running container: %v, want ErrConflict", err)
		}
		if err := rt.Kill(ctx, c.ID, ""); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		s.wantKilled(t, rt, c.ID)
	})
	t.Run("PausedRefusesExecAndRemove", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		ctx := s.ctx(t)
		if err := gantry.Pause(ctx, rt, c.ID); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		if s.caps.Supported(gantry.FeatureExec) {
			var out bytes.Buffer
			if _, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: sh("echo ran"), Stdout: &out}); !errors.Is(err, gantry.ErrConflict) || out.Len() != 0 {
				t.Errorf("Exec in a paused container: %v, output %q; want ErrConflict and no output", err, out.String())
			}
		}
		if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Remove of a paused container without Force: %v, want ErrConflict", err)
		}
		wantStatus(t, rt, c.ID, gantry.StatusPaused)
		if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}); err != nil {
			t.Fatalf("Remove of a paused container with Force: %v", err)
		}
		if _, err := rt.Inspect(ctx, c.ID); !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("Inspect after forced Remove: %v, want ErrNotFound", err)
		}
	})
	t.Run("NotRunning", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		if err := gantry.Pause(s.ctx(t), rt, c.ID); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Pause of a created container: %v, want ErrConflict", err)
		}
		if err := gantry.Unpause(s.ctx(t), rt, c.ID); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Unpause of a created container: %v, want ErrConflict", err)
		}
		wantStatus(t, rt, c.ID, gantry.StatusCreated)
	})
}

func (s *suite) testRename(t *testing.T) {
	s.require(t, gantry.FeatureRename)
	t.Run("NewName", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		name := "rtt-renamed-" + randomHex(4)
		if err := gantry.Rename(s.ctx(t), rt, c.Name, name); err != nil {
			t.Fatalf("Rename: %v", err)
		}
		got := inspect(t, rt, name)
		if got.ID != c.ID || got.Name != name || got.Spec.Name != name {
			t.Errorf("after Rename: %s %q (spec %q), want %s %q", got.ID, got.Name, got.Spec.Name, c.ID, name)
		}
		if _, err := rt.Inspect(s.ctx(t), c.Name); !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("Inspect(old name): %v, want ErrNotFound", err)
		}
	})
	t.Run("Conflicts", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		tag := newTag()
		a := s.create(t, rt, tag, "exit 0")
		b := s.create(t, rt, tag, "exit 0")
		if err := gantry.Rename(s.ctx(t), rt, a.ID, b.Name); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Rename to a name in use: %v, want ErrConflict", err)
		}
		if err := gantry.Rename(s.ctx(t), rt, a.ID, "-bad name"); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Rename to an invalid name: %v, want ErrInvalidArgument", err)
		}
		if got := inspect(t, rt, a.ID); got.Name != a.Name {
			t.Errorf("refused Renames changed the name to %q", got.Name)
		}
	})
}

func (s *suite) testUpdate(t *testing.T) {
	s.require(t, gantry.FeatureUpdate)
	t.Run("Resources", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		res := gantry.Resources{CPU: 0.5, MemoryBytes: 256 << 20}
		if err := gantry.Update(s.ctx(t), rt, c.ID, res); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if got := inspect(t, rt, c.ID); got.Spec.Resources != res || got.State.Status != gantry.StatusRunning {
			t.Errorf("after Update: resources %+v status %s, want %+v running", got.Spec.Resources, got.State.Status, res)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		if err := gantry.Update(s.ctx(t), rt, c.ID, gantry.Resources{CPU: -1}); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Update with CPU -1: %v, want ErrInvalidArgument", err)
		}
		if got := inspect(t, rt, c.ID); got.Spec.Resources != (gantry.Resources{}) {
			t.Errorf("a refused Update changed resources to %+v", got.Spec.Resources)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader on different
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (s *suite) testAttach(t *testing.T) {
	s.require(t, gantry.FeatureAttach, gantry.FeatureStdin)
	t.Run("Streams", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		spec := s.spec(newTag(), `read -r line; echo "got $line"; echo "err $line" >&2; exit 8`)
		spec.OpenStdin = true
		c := Start(t, rt, spec)
		stdinR, stdinW := io.Pipe()
		var stdout, stderr syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- gantry.Attach(s.ctx(t), rt, c.ID, gantry.AttachOptions{Stdin: stdinR, Stdout: &stdout, Stderr: &stderr})
		}()
		go func() {
			io.WriteString(stdinW, "hello\n")
			stdinW.Close()
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
		case <-time.After(s.patience):
			t.Fatalf("Attach did not return within %v of the container's exit", s.patience)
		}
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 8, "")
		if stdout.String() != "got hello\n" || stderr.String() != "err hello\n" {
			t.Errorf("attached stdout %q stderr %q, want %q and %q", stdout.String(), stderr.String(), "got hello\n", "err hello\n")
		}
	})
}

func (s *suite) testTop(t *testing.T) {
	s.require(t, gantry.FeatureTop)
	t.Run("Running", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), `echo ready; sleep 300`)
		top, err := gantry.Top(s.ctx(t), rt, c.ID)
		if err != nil {
			t.Fatalf("Top: %v", err)
		}
		if len(top.Titles) == 0 || len(top.Processes) == 0 {
			t.Fatalf("Top = %+v, want titles and at least one process", top)
		}
		found := false
		for _, p := range top.Processes {
			if len(p) != len(top.Titles) {
				t.Errorf("process row %q has %d columns for %d titles", p, len(p), len(top.Titles))
			}
			found = found || strings.Contains(strings.Join(p, " "), "sleep 300")
		}
		if !found {
			t.Errorf("Top shows no process running sleep 300: %q", top.Processes)
		}
	})
	t.Run("NotRunning", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.create(t, rt, newTag(), "exit 0")
		if _, err := gantry.Top(s.ctx(t), rt, c.ID); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Top of a created container: %v, want ErrConflict", err)
		}
	})
}

func (s *suite) testStats(t *testing.T) {
	s.require(t, gantry.FeatureStats)
	t.Run("Running", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), `echo ready; sleep 300`)
		before := time.Now()
		st, err := gantry.ContainerStats(s.ctx(t), rt, c.ID)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		if st.PIDs < 1 || st.Time.Before(before.Add(-time.Second-s.h.Latency)) || st.CPUTime < 0 || st.MemoryBytes < 0 {
			t.Errorf("Stats of a running container = %+v, want a current sample with at least one process", st)
		}
		if s.caps.Level(gantry.FeatureStats) == gantry.Full && st.MemoryBytes == 0 {
			t.Errorf("Stats, declared full, reports no memory in use: %+v", st)
		}
	})
}
