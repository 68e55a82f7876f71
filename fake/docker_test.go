package fake_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// TestGoStopOutlivesItsContext checks moby's containerStop rule: the stop
// runs under context.WithoutCancel, so a caller that stops waiting does
// not cancel it, and a container that ignores its stop signal is still
// killed when the timeout elapses.
func TestGoStopOutlivesItsContext(t *testing.T) {
	rt, sigs := newGo(t)
	c := start(t, rt, gantry.Spec{Image: "test/ignore:1"})
	waitForLine(t, rt, c.ID, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The caller gives up as soon as the image has its SIGTERM.
	go func() {
		if <-sigs == syscall.SIGTERM {
			cancel()
		}
	}()
	err := rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: new(100 * time.Millisecond)})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("stop: %v, want nil or context.Canceled", err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	st, err := rt.Wait(wctx, c.ID, gantry.WaitNotRunning)
	if err != nil || st.ExitCode != 137 || st.Signal != "SIGKILL" {
		t.Errorf("after a stop whose caller gave up: %+v, %v; want 137 SIGKILL once the timeout elapsed", st, err)
	}
}

// TestHostRemovalInProgress holds a forced removal open with a process
// that escaped the container's group and keeps its output open, and
// checks moby's RemovalInProgress rules meanwhile: a second Remove and
// Logs are conflicts, the removal goes on after its caller gives up, and
// it wakes a removed waiter once the container has died.
func TestHostRemovalInProgress(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	gate := filepath.Join(t.TempDir(), "gate")
	c := runSh(t, rt, `setsid sh -c 'while [ ! -e "$GATE" ]; do sleep 0.01; done' & echo ready; wait`,
		func(s *gantry.Spec) { s.Env = []string{"GATE=" + gate} })
	waitForLine(t, rt, c.ID, "ready")

	removed := registered(t, ctx, rt, c.ID, gantry.WaitRemoved)

	rctx, cancel := context.WithCancel(ctx)
	first := make(chan error, 1)
	go func() { first <- rt.Remove(rctx, c.ID, gantry.RemoveOptions{Force: true}) }()
	for !rt.Removing(c.ID) {
		runtime.Gosched()
	}
	wantErr(t, "second remove", rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}), gantry.ErrConflict)
	_, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
	wantErr(t, "logs during removal", err, gantry.ErrConflict)
	cancel()
	wantErr(t, "remove whose caller gave up", <-first, context.Canceled)

	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (<-removed).Err; err != nil {
		t.Errorf("removed waiter: %v", err)
	}
	_, err = rt.Inspect(ctx, c.ID)
	wantErr(t, "inspect after the removal completed", err, gantry.ErrNotFound)
}

// TestGoAttachPaused checks moby's ContainerAttach: a paused container is
// a conflict ("unpause the container before attach").
func TestGoAttachPaused(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/noexec"})
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Pause(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// Bounded so that an attach that is let through fails the test
	// instead of hanging it.
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	wantErr(t, "attach to a paused container", rt.Attach(actx, c.ID, gantry.AttachOptions{Stdout: &out}), gantry.ErrConflict)
	if st := state(t, rt, c.ID); st.Status != gantry.StatusPaused {
		t.Errorf("a refused attach changed the state to %+v", st)
	}
}

// TestGoCloseLeavesNoGoroutine closes a runtime in the middle of
// everything that starts goroutines (runs, a paused run, an exec, a
// following reader, parked waits, a stop that waits forever, a run with a
// timeout) and checks that the goroutine count comes back to where it was.
func TestGoCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	rt, _ := newGo(t)
	ctx := context.Background()

	running := start(t, rt, gantry.Spec{Image: "test/ignore:1"})
	waitForLine(t, rt, running.ID, "ready")
	paused := start(t, rt, gantry.Spec{Image: "test/noexec", Timeout: time.Hour})
	waitForLine(t, rt, paused.ID, "ready")
	if err := rt.Pause(ctx, paused.ID); err != nil {
		t.Fatal(err)
	}
	trap := start(t, rt, gantry.Spec{Image: "test/trap"})
	waitForLine(t, rt, trap.ID, "ready")
	created := create(t, rt, gantry.Spec{Image: "test/echo"})

	errs := make(chan error, 5)
	go func() {
		_, err := rt.Exec(ctx, trap.ID, gantry.ExecConfig{Cmd: []string{"block"}})
		errs <- err
	}()
	go func(w <-chan gantry.WaitResult) { errs <- (<-w).Err }(registered(t, ctx, rt, created.ID, gantry.WaitNextExit))
	go func(w <-chan gantry.WaitResult) { errs <- (<-w).Err }(registered(t, ctx, rt, running.ID, gantry.WaitRemoved))
	go func() { errs <- rt.Stop(ctx, running.ID, gantry.StopOptions{Timeout: new(time.Duration(-1))}) }()
	follow, err := rt.Logs(ctx, trap.ID, gantry.LogsOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	go func() { errs <- gantry.CopyLogs(nil, nil, follow) }()

	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	for range cap(errs) {
		<-errs
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestGoRestartPaused checks moby's containerRestart on a paused
// container: the stop signal is delivered and the container resumed so it
// can act on it, then it starts again, running and no longer paused.
func TestGoRestartPaused(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/trap"})
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Pause(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := rt.Restart(ctx, c.ID, gantry.StopOptions{}); err != nil {
		t.Fatalf("restart of a paused container: %v", err)
	}
	in, err := rt.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if in.State.Status != gantry.StatusRunning || in.State.Paused || in.RestartCount != 0 {
		t.Errorf("after restarting a paused container: state %+v, RestartCount %d", in.State, in.RestartCount)
	}
	waitForLine(t, rt, c.ID, "got TERM")
}
