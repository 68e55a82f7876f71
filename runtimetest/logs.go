package runtimetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// scriptStreams writes two lines to each stream, alternating.
const scriptStreams = `echo out1; echo err1 >&2; echo out2; echo err2 >&2`

// scriptTicks writes "tick N" for N = 0, 1, 2... until stopped.
const scriptTicks = `i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.1; done`

// finished starts script and waits for it to exit with code 0.
func (s *suite) finished(t *testing.T, rt gantry.Runtime, script string) *gantry.Container {
	t.Helper()
	c := s.start(t, rt, newTag(), script)
	wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 0, "")
	return inspect(t, rt, c.ID)
}

// follower reads a following LogReader in the background, so a test can
// wait for entries with a deadline.
type follower struct {
	r       gantry.LogReader
	entries chan gantry.LogEntry
	err     chan error
}

func follow(r gantry.LogReader) *follower {
	f := &follower{r: r, entries: make(chan gantry.LogEntry), err: make(chan error, 1)}
	go func() {
		for {
			e, err := r.Next()
			if err != nil {
				f.err <- err
				return
			}
			f.entries <- e
		}
	}()
	return f
}

// next returns the next entry, failing t if the reader ends or none comes
// within the suite's patience.
func (s *suite) next(t *testing.T, f *follower) gantry.LogEntry {
	t.Helper()
	select {
	case e := <-f.entries:
		return e
	case err := <-f.err:
		t.Fatalf("following reader ended early: %v", err)
	case <-time.After(s.patience):
		t.Fatalf("following reader: no entry within %v", s.patience)
	}
	return gantry.LogEntry{}
}

// end drains the reader and fails t unless it ends with io.EOF within the
// suite's patience; it returns the entries read meanwhile.
func (s *suite) end(t *testing.T, f *follower) []gantry.LogEntry {
	t.Helper()
	var es []gantry.LogEntry
	deadline := time.After(s.patience)
	for {
		select {
		case e := <-f.entries:
			es = append(es, e)
		case err := <-f.err:
			if !errors.Is(err, io.EOF) {
				t.Errorf("following reader ended with %v, want io.EOF", err)
			}
			return es
		case <-deadline:
			f.r.Close()
			t.Fatalf("following reader did not end within %v after the container stopped", s.patience)
		}
	}
}

func (s *suite) testLogs(t *testing.T) {
	s.require(t, gantry.FeatureLogs)
	t.Run("Streams", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, scriptStreams)
		all := s.logs(t, rt, c.ID, gantry.LogsOptions{})
		wantLines(t, "stdout entries", lines(all, gantry.Stdout), []string{"out1", "out2"})
		wantLines(t, "stderr entries", lines(all, gantry.Stderr), []string{"err1", "err2"})
		if len(all) != 4 {
			t.Errorf("Logs returned %d entries, want 4: %s", len(all), formatEntries(all))
		}
		for _, tc := range []struct {
			opts   gantry.LogsOptions
			stream gantry.Stream
			want   []string
		}{
			{gantry.LogsOptions{Stdout: true}, gantry.Stdout, []string{"out1", "out2"}},
			{gantry.LogsOptions{Stderr: true}, gantry.Stderr, []string{"err1", "err2"}},
		} {
			es := s.logs(t, rt, c.ID, tc.opts)
			wantLines(t, fmt.Sprintf("Logs(%+v)", tc.opts), lines(es, 0), tc.want)
			for _, e := range es {
				if e.Stream != tc.stream {
					t.Errorf("Logs(%+v) returned a %s entry %q", tc.opts, e.Stream, e.Line)
				}
			}
		}
		both := s.logs(t, rt, c.ID, gantry.LogsOptions{Stdout: true, Stderr: true})
		if len(both) != 4 {
			t.Errorf("Logs(Stdout, Stderr) returned %d entries, want 4", len(both))
		}
	})
	t.Run("ExactText", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `printf 'a b  c\n\tx y\n'; printf 'ünï\n' >&2; printf 'no newline'`)
		var stdout, stderr bytes.Buffer
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{})
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if err := gantry.CopyLogs(&stdout, &stderr, r); err != nil {
			t.Fatalf("CopyLogs: %v", err)
		}
		// A last line without a newline stays without one, as Docker
		// keeps it; a backend whose logs are partial may add one (its
		// note says so).
		want := "a b  c\n\tx y\nno newline"
		if s.caps.Level(gantry.FeatureLogs) != gantry.Full && stdout.String() == want+"\n" {
			want += "\n"
		}
		if got := stdout.String(); got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
		if got, want := stderr.String(), "ünï\n"; got != want {
			t.Errorf("stderr %q, want %q", got, want)
		}
	})
	t.Run("Tail", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; done`)
		all := make([]string, 10)
		for i := range all {
			all[i] = "line " + strconv.Itoa(i+1)
		}
		for _, tc := range []struct {
			tail int
			want []string
		}{
			{0, all},
			{1, all[9:]},
			{3, all[7:]},
			{10, all},
			{20, all},
			{gantry.TailNone, nil},
		} {
			got := lines(s.logs(t, rt, c.ID, gantry.LogsOptions{Tail: tc.tail}), 0)
			wantLines(t, fmt.Sprintf("Logs(Tail %d)", tc.tail), got, tc.want)
		}
	})
	t.Run("SinceUntil", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.05; done`)
		all := s.logs(t, rt, c.ID, gantry.LogsOptions{})
		if len(all) != 6 {
			t.Fatalf("Logs returned %d entries, want 6: %s", len(all), formatEntries(all))
		}
		// The expected entries come from the entries' own times, so the
		// check holds however the backend stamps them.
		filter := func(since, until time.Time) []string {
			var out []string
			for _, e := range all {
				if (since.IsZero() || !e.Time.Before(since)) && (until.IsZero() || !e.Time.After(until)) {
					out = append(out, e.Line)
				}
			}
			return out
		}
		t2, t5 := all[2].Time, all[5].Time
		for _, tc := range []struct {
			name         string
			since, until time.Time
		}{
			{"since", t2, time.Time{}},
			{"until", time.Time{}, t2},
			{"since and until", all[1].Time, all[4].Time},
			{"since after the end", t5.Add(time.Second), time.Time{}},
			{"until before the start", time.Time{}, all[0].Time},
		} {
			got := lines(s.logs(t, rt, c.ID, gantry.LogsOptions{Since: tc.since, Until: tc.until}), 0)
			wantLines(t, tc.name, got, filter(tc.since, tc.until))
		}
		if got := lines(s.logs(t, rt, c.ID, gantry.LogsOptions{Since: t2}), 0); len(got) == 0 || got[0] != "line 3" {
			t.Errorf("Logs(Since the third entry's time) = %q, want it to start at line 3", got)
		}
	})
	t.Run("Timestamps", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, scriptStreams)
		es := s.logs(t, rt, c.ID, gantry.LogsOptions{Timestamps: true})
		if len(es) != 4 {
			t.Fatalf("Logs returned %d entries, want 4", len(es))
		}
		for _, e := range es {
			if stampedBefore(e.Time, c.State.StartedAt) || stampedBefore(c.State.FinishedAt, e.Time) {
				t.Errorf("entry %q at %v is outside the run [%v, %v]", e.Line, e.Time, c.State.StartedAt, c.State.FinishedAt)
			}
		}
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{Timestamps: true})
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if !r.Timestamps() {
			t.Error("reader opened with Timestamps reports Timestamps() false")
		}
		var stdout, stderr bytes.Buffer
		if err := gantry.CopyLogs(&stdout, &stderr, r); err != nil {
			t.Fatalf("CopyLogs: %v", err)
		}
		for _, out := range []struct {
			buf  *bytes.Buffer
			want []string
		}{{&stdout, []string{"out1", "out2"}}, {&stderr, []string{"err1", "err2"}}} {
			got := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
			if len(got) != len(out.want) {
				t.Errorf("CopyLogs with timestamps wrote %q, want %d lines", out.buf.String(), len(out.want))
				continue
			}
			for i, line := range got {
				stamp, text, _ := strings.Cut(line, " ")
				ts, err := time.Parse(time.RFC3339Nano, stamp)
				if err != nil || text != out.want[i] {
					t.Errorf("line %q: want an RFC 3339 time, a space and %q (%v)", line, out.want[i], err)
					continue
				}
				if stampedBefore(ts, c.State.StartedAt) || stampedBefore(c.State.FinishedAt, ts) {
					t.Errorf("line %q: time outside the run [%v, %v]", line, c.State.StartedAt, c.State.FinishedAt)
				}
			}
		}
	})
	t.Run("SpanRestart", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, `echo start; echo end >&2; echo done`)
		first := inspect(t, rt, c.ID)
		if err := rt.Start(s.ctx(t), c.ID); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 0, "")
		es := s.logs(t, rt, c.ID, gantry.LogsOptions{})
		wantLines(t, "stdout of two runs", lines(es, gantry.Stdout), []string{"start", "done", "start", "done"})
		wantLines(t, "stderr of two runs", lines(es, gantry.Stderr), []string{"end", "end"})
		for i := 1; i < len(es); i++ {
			if es[i].Time.Before(es[i-1].Time) {
				t.Errorf("entry %d (%q at %v) is before entry %d (%q at %v)", i, es[i].Line, es[i].Time, i-1, es[i-1].Line, es[i-1].Time)
			}
		}
		if len(es) != 6 {
			t.Fatalf("two runs logged %d entries, want 6: %s", len(es), formatEntries(es))
		}
		for _, e := range es[3:] {
			if stampedBefore(e.Time, first.State.FinishedAt) {
				t.Errorf("second run's entry %q at %v is before the first run finished at %v", e.Line, e.Time, first.State.FinishedAt)
			}
		}
		wantLines(t, "Logs(Tail 3) across runs", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{Tail: 3}), 0), lines(es[3:], 0))
	})
	t.Run("RunningWithoutFollow", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		wantLines(t, "Logs of a running container", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"ready"})
	})
	t.Run("InvalidOptions", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, "echo x")
		now := time.Now()
		for _, opts := range []gantry.LogsOptions{
			{Tail: -2},
			{Since: now, Until: now.Add(-time.Second)},
		} {
			if _, err := rt.Logs(s.ctx(t), c.ID, opts); !errors.Is(err, gantry.ErrInvalidArgument) {
				t.Errorf("Logs(%+v): %v, want ErrInvalidArgument", opts, err)
			}
		}
	})
	t.Run("Follow", s.testFollow)
}

func (s *suite) testFollow(t *testing.T) {
	s.require(t, gantry.FeatureLogsFollow)
	t.Run("LinesArriveWhileRunning", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), scriptTicks)
		RequireLog(t, rt, c.ID, "tick 2", s.patience)
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{Follow: true, Tail: gantry.TailNone})
		if err != nil {
			t.Fatalf("Logs(Follow, TailNone): %v", err)
		}
		defer r.Close()
		f := follow(r)
		prev := -1
		for range 3 {
			e := s.next(t, f)
			n, err := strconv.Atoi(strings.TrimPrefix(e.Line, "tick "))
			switch {
			case err != nil || e.Stream != gantry.Stdout:
				t.Fatalf("followed entry %s %q, want a stdout tick", e.Stream, e.Line)
			case n <= 2:
				t.Fatalf("TailNone returned past line %q", e.Line)
			case prev >= 0 && n != prev+1:
				t.Fatalf("followed %q after tick %d: a line was lost or repeated", e.Line, prev)
			}
			prev = n
		}
		s.stop(t, rt, c.ID, 0)
		for _, e := range s.end(t, f) {
			n, err := strconv.Atoi(strings.TrimPrefix(e.Line, "tick "))
			if err != nil || n != prev+1 {
				t.Fatalf("followed %q after tick %d: a line was lost or repeated", e.Line, prev)
			}
			prev = n
		}
	})
	t.Run("EndsAfterExit", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), `echo ready; echo bye >&2; sleep 0.3; echo last`)
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatalf("Logs(Follow): %v", err)
		}
		defer r.Close()
		es := s.end(t, follow(r))
		wantLines(t, "followed stdout", lines(es, gantry.Stdout), []string{"ready", "last"})
		wantLines(t, "followed stderr", lines(es, gantry.Stderr), []string{"bye"})
	})
	t.Run("Exited", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.finished(t, rt, scriptStreams)
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{Follow: true, Stdout: true})
		if err != nil {
			t.Fatalf("Logs(Follow): %v", err)
		}
		defer r.Close()
		wantLines(t, "Logs(Follow) of an exited container", lines(s.end(t, follow(r)), 0), []string{"out1", "out2"})
	})
	t.Run("Tail", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		c := s.start(t, rt, newTag(), scriptTicks)
		RequireLog(t, rt, c.ID, "tick 3", s.patience)
		r, err := rt.Logs(s.ctx(t), c.ID, gantry.LogsOptions{Follow: true, Tail: 2})
		if err != nil {
			t.Fatalf("Logs(Follow, Tail 2): %v", err)
		}
		defer r.Close()
		f := follow(r)
		var got []int
		for range 4 {
			e := s.next(t, f)
			n, err := strconv.Atoi(strings.TrimPrefix(e.Line, "tick "))
			if err != nil {
				t.Fatalf("followed %q, want a tick", e.Line)
			}
			got = append(got, n)
		}
		s.stop(t, rt, c.ID, 0)
		s.end(t, f)
		if got[0] < 2 {
			t.Errorf("Tail 2 after tick 3 started at tick %d", got[0])
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1]+1 {
				t.Errorf("followed ticks %v: the tail and the follow do not join up", got)
				break
			}
		}
	})
}
