package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// cleanupTimeout bounds the removal of one container at the end of a test;
// a cloud backend may need several round trips to cancel and delete.
const cleanupTimeout = 2 * time.Minute

// lastKept is how many recent lines a failed wait reports.
const lastKept = 10

// Create creates a container from spec and arranges for it to be
// force-removed when t ends (after logging its last lines, when t has
// failed). The removal happens whichever comes first: t's cleanup, or the
// Close of rt that a test may defer (through gantry.BeforeClose), so that
// `defer rt.Close()` leaves nothing running. It fails t if Create fails.
func Create(t testing.TB, rt gantry.Runtime, spec gantry.Spec) *gantry.Container {
	t.Helper()
	c, err := rt.Create(t.Context(), spec)
	if err != nil {
		t.Fatalf("Create(%s %q): %v", spec.Image, spec.Name, err)
	}
	removeLater(t, rt, c)
	return c
}

// removeLater arranges for container c to be force-removed when t ends or
// when rt is closed, whichever comes first, logging its last lines first
// when t has failed.
func removeLater(t testing.TB, rt gantry.Runtime, c *gantry.Container) {
	remove := func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if t.Failed() {
			if es, err := readLogs(ctx, rt, c.ID, gantry.LogsOptions{Tail: 20}); err == nil && len(es) > 0 {
				t.Logf("container %s (%s), last lines: %s", c.Name, shortID(c.ID), formatEntries(es))
			}
		}
		err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("cleanup: Remove(%s, Force): %v", c.Name, err)
		}
	}
	stop, err := gantry.BeforeClose(rt, remove)
	t.Cleanup(func() {
		// Without a hook (a backend without BeforeClose) or with one that
		// has not run, the removal is this cleanup's to do.
		if err != nil || stop() {
			remove()
		}
	})
}

// shortID is the 12-character form of a container ID that docker ps shows.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Start creates a container from spec, starts it, and registers a cleanup
// with t that force-removes it. It returns the container as Inspect
// describes it once started, and fails t if any step fails.
func Start(t testing.TB, rt gantry.Runtime, spec gantry.Spec) *gantry.Container {
	t.Helper()
	id := Create(t, rt, spec).ID
	if err := rt.Start(t.Context(), id); err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	c, err := rt.Inspect(t.Context(), id)
	if err != nil {
		t.Fatalf("Inspect(%s) after Start: %v", id, err)
	}
	return c
}

// ErrStopped is the cause a LogWaitError carries when the container stopped
// without writing the line.
var ErrStopped = errors.New("the container stopped")

// LogWaitError reports a WaitForLog that did not see its line, with the
// last lines it did see: a bare "context deadline exceeded" would leave the
// reader guessing.
type LogWaitError struct {
	// ID is the container waited on.
	ID string
	// Want is the text the wait looked for.
	Want string
	// Last holds the most recent lines seen, oldest first.
	Last []gantry.LogEntry
	// Err is why the wait ended: ErrStopped, the context's error, or the
	// error Logs returned.
	Err error
}

// Error says what was awaited, why the wait ended, and what the container
// wrote last.
func (e *LogWaitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "runtimetest: no log line containing %q from container %s: %v", e.Want, e.ID, e.Err)
	if len(e.Last) == 0 {
		b.WriteString("; it wrote no lines")
	} else {
		fmt.Fprintf(&b, "; its last %d lines: %s", len(e.Last), formatEntries(e.Last))
	}
	return b.String()
}

// Unwrap returns the cause, so errors.Is(err, context.DeadlineExceeded)
// and errors.Is(err, ErrStopped) work.
func (e *LogWaitError) Unwrap() error { return e.Err }

// WaitForLog waits until the started container id has written a line (to
// either stream) containing substr, and returns that line's entry. It
// follows the logs where the backend can and polls them where it cannot.
// It fails with a *LogWaitError when ctx ends or the container stops
// first.
func WaitForLog(ctx context.Context, rt gantry.Runtime, id, substr string) (gantry.LogEntry, error) {
	if rt.Capabilities().Supported(gantry.FeatureLogsFollow) {
		return followForLog(ctx, rt, id, substr)
	}
	return pollForLog(ctx, rt, id, substr)
}

func followForLog(ctx context.Context, rt gantry.Runtime, id, substr string) (gantry.LogEntry, error) {
	werr := &LogWaitError{ID: id, Want: substr}
	r, err := rt.Logs(ctx, id, gantry.LogsOptions{Follow: true})
	if err != nil {
		werr.Err = err
		return gantry.LogEntry{}, werr
	}
	defer r.Close()
	// A reader must end when ctx does; closing it too guards against a
	// backend that would leave Next blocked.
	defer context.AfterFunc(ctx, func() { r.Close() })()
	for {
		e, err := r.Next()
		switch {
		case ctx.Err() != nil:
			werr.Err = ctx.Err()
		case errors.Is(err, io.EOF):
			werr.Err = ErrStopped
		case err != nil:
			werr.Err = err
		case strings.Contains(e.Line, substr):
			return e, nil
		default:
			werr.Last = keepLast(werr.Last, e)
			continue
		}
		return gantry.LogEntry{}, werr
	}
}

func pollForLog(ctx context.Context, rt gantry.Runtime, id, substr string) (gantry.LogEntry, error) {
	werr := &LogWaitError{ID: id, Want: substr}
	pause := 20 * time.Millisecond
	for {
		// Whether it was running is read before the logs, so a container
		// seen stopped has no lines later than the ones read next.
		c, err := rt.Inspect(ctx, id)
		if err != nil {
			werr.Err = err
			return gantry.LogEntry{}, werr
		}
		es, err := readLogs(ctx, rt, id, gantry.LogsOptions{})
		if err != nil {
			werr.Err = err
			return gantry.LogEntry{}, werr
		}
		for _, e := range es {
			if strings.Contains(e.Line, substr) {
				return e, nil
			}
		}
		werr.Last = werr.Last[:0]
		for _, e := range es {
			werr.Last = keepLast(werr.Last, e)
		}
		if !c.State.Running {
			werr.Err = ErrStopped
			return gantry.LogEntry{}, werr
		}
		select {
		case <-ctx.Done():
			werr.Err = ctx.Err()
			return gantry.LogEntry{}, werr
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

func keepLast(last []gantry.LogEntry, e gantry.LogEntry) []gantry.LogEntry {
	if len(last) == lastKept {
		last = append(last[:0], last[1:]...)
	}
	return append(last, e)
}

// RequireLog is WaitForLog bounded by timeout; it fails t, with the last
// lines seen, when the line does not come.
func RequireLog(t testing.TB, rt gantry.Runtime, id, substr string, timeout time.Duration) gantry.LogEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	e, err := WaitForLog(ctx, rt, id, substr)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// RequireExit waits up to timeout for container id to stop running and
// returns its exit status. It fails t, with the container's last lines,
// when it does not stop in time.
func RequireExit(t testing.TB, rt gantry.Runtime, id string, timeout time.Duration) gantry.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	st, err := rt.Wait(ctx, id, gantry.WaitNotRunning)
	if err != nil {
		t.Fatalf("runtimetest: container %s did not exit within %v: %v%s", id, timeout, err, lastLines(rt, id))
	}
	return st
}
