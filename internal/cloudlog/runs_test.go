package cloudlog

import (
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry"
)

// The tests here give a reader the runs' final records (Source.Runs): it
// ends as soon as the last run's counted lines are in, not a grace period
// after the stop, and reports lines that never came instead of hiding
// them.

const runLabel = "run"

// inRun puts e in run.
func inRun(e *loggingpb.LogEntry, run string) *loggingpb.LogEntry {
	e.Labels = map[string]string{runLabel: run}
	return e
}

// record is the final record of run: stdout lines counted.
func (f *fakeLogging) record(run string, stdout int, at time.Time) *loggingpb.LogEntry {
	e := inRun(f.entry("record "+strconv.Itoa(stdout), at), run)
	e.LogName = LogName(testProject, stderrLog)
	e.Labels["record"] = "exit"
	return e
}

// testRuns decodes the records record makes; last names the last run.
func testRuns(last string) *Runs {
	return &Runs{
		Of: func(e *loggingpb.LogEntry) string { return e.GetLabels()[runLabel] },
		Record: func(e *loggingpb.LogEntry) (Counts, bool) {
			if e.GetLabels()["record"] != "exit" {
				return Counts{}, false
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(e.GetTextPayload(), "record "))
			return Counts{Stdout: n}, true
		},
		Last:    func() string { return last },
		Exclude: `NOT labels.record="exit"`,
	}
}

// TestRunsEndListingAtOnce: a listing right after the stop ends as soon
// as the last run's lines are all in, without waiting out the grace,
// and returns them in order without the record; one that finds a line
// missing lists again until the grace has passed, then reports the loss.
func TestRunsEndListingAtOnce(t *testing.T) {
	const grace = 10 * time.Second
	for _, tc := range []struct {
		name    string
		late    time.Duration // when the last line reaches the service; < 0: never
		wantEnd time.Duration
		wantErr error
		want    []string
	}{
		{name: "complete", late: 0, wantEnd: 0, wantErr: io.EOF, want: []string{"a", "b", "c"}},
		// Listings at 0, then after doubling delays from Settle: 100ms,
		// 300ms, 700ms, 1.5s, which finds the late line.
		{name: "late line", late: 1400 * time.Millisecond, wantEnd: 1500 * time.Millisecond, wantErr: io.EOF, want: []string{"a", "b", "c"}},
		{name: "lost line", late: -1, wantEnd: grace, wantErr: gantry.ErrDataLoss, want: []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := startFake(t)
				start := f.start
				f.write(inRun(f.entry("old", start.Add(-time.Hour)), "r1"))
				f.write(inRun(f.entry("a", start.Add(-3*time.Second)), "r2"),
					inRun(f.entry("b", start.Add(-2*time.Second)), "r2"),
					f.record("r2", 3, start.Add(-500*time.Millisecond)))
				last := inRun(f.entry("c", start.Add(-time.Second)), "r2")
				switch {
				case tc.late == 0:
					f.write(last)
				case tc.late > 0:
					go func() {
						time.Sleep(tc.late)
						f.write(last)
					}()
				}
				src := source(c)
				src.Grace = grace
				src.Settle = 100 * time.Millisecond
				src.NotBefore = start.Add(-10 * time.Second)
				src.Ended = start
				src.Runs = testRuns("r2")
				r, err := Open(t.Context(), src, gantry.LogsOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				out := finish(t, readAll(r, start))
				if !errors.Is(out.err, tc.wantErr) {
					t.Fatalf("ended with %v, want %v", out.err, tc.wantErr)
				}
				if out.end != tc.wantEnd {
					t.Errorf("ended at %v, want %v", out.end, tc.wantEnd)
				}
				if got := out.texts(); !slices.Equal(got, tc.want) {
					t.Errorf("lines %q, want %q", got, tc.want)
				}
				if tc.wantErr == gantry.ErrDataLoss && !strings.Contains(out.err.Error(), "wrote 3 stdout and 0 stderr lines, of which 2 and 0 were in Cloud Logging within 10s") {
					t.Errorf("loss error %q does not say what is missing", out.err)
				}
			})
		})
	}
}

// TestRunsEndFollowAtOnce: a follower ends as soon as the stop is seen
// and the last run's record and lines are in, whichever comes last, not
// a grace period after the stop.
func TestRunsEndFollowAtOnce(t *testing.T) {
	const grace = 10 * time.Second
	for _, tc := range []struct {
		name        string
		learn       time.Duration // when Stopped returns
		recordAt    time.Duration // when the record and last line stream in
		wantEnd     time.Duration
		wantLastErr error
	}{
		{name: "record after the stop is seen", learn: time.Second, recordAt: 3 * time.Second, wantEnd: 3 * time.Second},
		{name: "record before the stop is seen", learn: 4 * time.Second, recordAt: 2 * time.Second, wantEnd: 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := startFake(t)
				start := f.start
				f.write(inRun(f.entry("a", start.Add(-time.Second)), "r1"))
				src := source(c)
				src.Grace = grace
				src.Stopped = stoppedAt(start, tc.learn, tc.learn)
				src.Runs = testRuns("r1")
				r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				done := readAll(r, start)
				s := f.nextTail(t)
				time.Sleep(tc.recordAt)
				b := inRun(f.entry("b", time.Now()), "r1")
				rec := f.record("r1", 2, time.Now())
				f.write(b, rec)
				s.Send(b, rec)
				out := finish(t, done)
				if !errors.Is(out.err, io.EOF) {
					t.Fatalf("follow ended with %v, want io.EOF", out.err)
				}
				if out.end != tc.wantEnd {
					t.Errorf("follow ended at %v, want %v", out.end, tc.wantEnd)
				}
				if got, want := out.texts(), []string{"a", "b"}; !slices.Equal(got, want) {
					t.Errorf("lines %q, want %q", got, want)
				}
			})
		})
	}
}

// TestRunsFollowReportsLoss: a follower whose last run's record counts a
// line that never comes ends the grace after the stop, with the loss.
func TestRunsFollowReportsLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := startFake(t)
		start := f.start
		f.write(inRun(f.entry("a", start.Add(-time.Second)), "r1"), f.record("r1", 2, start.Add(-time.Second)))
		src := source(c)
		src.Grace = 5 * time.Second
		src.Stopped = stoppedAt(start, time.Second, time.Second)
		src.Runs = testRuns("r1")
		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out := finish(t, readAll(r, start))
		if !errors.Is(out.err, gantry.ErrDataLoss) {
			t.Fatalf("follow ended with %v, want ErrDataLoss", out.err)
		}
		if out.end != 6*time.Second {
			t.Errorf("follow ended at %v, want 6s", out.end)
		}
		if got, want := out.texts(), []string{"a"}; !slices.Equal(got, want) {
			t.Errorf("lines %q, want %q", got, want)
		}
	})
}

// TestRunsPartialReadsExcludeRecords: a reader of part of the log (a
// tail) cannot count, so it leaves the records out of its query, and a
// tail of N is N lines.
func TestRunsPartialReadsExcludeRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := startFake(t)
		start := f.start
		f.write(inRun(f.entry("a", start.Add(-2*time.Second)), "r1"))
		src := source(c)
		src.Runs = testRuns("r1")
		r, err := Open(t.Context(), src, gantry.LogsOptions{Tail: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out := finish(t, readAll(r, start))
		if !errors.Is(out.err, io.EOF) {
			t.Fatalf("ended with %v", out.err)
		}
		if l := f.lastList(); !strings.Contains(l.filter, `NOT labels.record="exit"`) {
			t.Errorf("tail query %q does not leave the records out", l.filter)
		}
	})
}

// TestRunsWaitForEarlierRuns: the last run's record vouches for that run
// only; a line of an earlier run may still be on its way until the runs
// before the last have settled (Runs.Settled), and the reader waits for
// that, not for the whole grace.
func TestRunsWaitForEarlierRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := startFake(t)
		start := f.start
		f.write(inRun(f.entry("b", start.Add(-time.Second)), "r2"), f.record("r2", 1, start.Add(-500*time.Millisecond)))
		late := inRun(f.entry("a", start.Add(-3*time.Second)), "r1")
		go func() {
			time.Sleep(1200 * time.Millisecond)
			f.write(late)
		}()
		src := source(c)
		src.Grace = 10 * time.Second
		src.Settle = 100 * time.Millisecond
		src.NotBefore = start.Add(-time.Minute)
		src.Ended = start
		src.Runs = testRuns("r2")
		src.Runs.Settled = func() time.Time { return start.Add(2 * time.Second) }
		r, err := Open(t.Context(), src, gantry.LogsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out := finish(t, readAll(r, start))
		if !errors.Is(out.err, io.EOF) {
			t.Fatalf("ended with %v", out.err)
		}
		if got, want := out.texts(), []string{"a", "b"}; !slices.Equal(got, want) {
			t.Errorf("lines %q, want %q", got, want)
		}
		if out.end != 2*time.Second {
			t.Errorf("ended at %v, want 2s (when the earlier run settled)", out.end)
		}
	})
}
