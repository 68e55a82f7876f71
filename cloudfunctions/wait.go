package cloudfunctions

import (
	"context"
	"errors"
	"fmt"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudfunctions/internal/runner"
	"github.com/googleapis/gax-go/v2"
)

// lostExit is the exit status of a run the function's instance no longer
// knows: Cloud Run retired the instance (it sends SIGTERM, then SIGKILL),
// and the exit code went with it.
var lostExit = gantry.ExitStatus{ExitCode: 137, Signal: "SIGKILL", Error: "the function's instance that ran the command was shut down, and its exit status with it"}

// waitRun holds a wait request for run runID of f until the run ends. A
// function that stops serving meanwhile is errRemoved when it is gone.
func (r *Runtime) waitRun(ctx context.Context, f *fn, runID string) (gantry.ExitStatus, error) {
	st, err := r.invoke.wait(ctx, f.url(), runID)
	switch {
	case errors.Is(err, errRunLost):
		return lostExit, nil
	case errors.Is(err, errNotServing):
		return gantry.ExitStatus{}, r.gone(ctx, f, err)
	case err != nil:
		return gantry.ExitStatus{}, fmt.Errorf("wait for %s: %w", f.pb.GetName(), err)
	}
	return st, nil
}

// Wait blocks until the container meets cond. A wait for a run holds a
// wait request on the function (the runner answers when the run ends);
// a wait for a run not yet started, or for a removal, looks at the
// function every PollInterval.
func (r *Runtime) Wait(ctx context.Context, id string, cond gantry.WaitCondition) (_ gantry.ExitStatus, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "wait", id)
	return gantry.Await(r.RegisterWait(ctx, id, cond))
}

// RegisterWait registers a wait as Wait does and returns once it is in
// place (see gantry.WaitRegisterer): the function and its latest run have
// been read, so a run started afterwards is the next exit, and a removal
// afterwards is seen.
func (r *Runtime) RegisterWait(ctx context.Context, id string, cond gantry.WaitCondition) (_ <-chan gantry.WaitResult, err error) {
	defer gantry.WrapOp(&err, "cloudfunctions", "wait", id)
	if err := cond.Validate(); err != nil {
		return nil, err
	}
	f, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	var st runner.Status
	var ok bool
	if serving(f) == nil {
		if st, ok, err = r.latest(ctx, f); err != nil {
			return nil, err
		}
	}
	// The wait ends with ErrClosed when the Runtime closes.
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.bg, cancel)
	ch := make(chan gantry.WaitResult, 1)
	go func() {
		defer cancel()
		defer stop()
		var res gantry.WaitResult
		res.Status, res.Err = r.await(wctx, f, cond, st, ok)
		if res.Err != nil && ctx.Err() == nil && r.bg.Err() != nil {
			res.Err = gantry.ErrClosed
		}
		gantry.WrapOp(&res.Err, "cloudfunctions", "wait", id)
		ch <- res
		close(ch)
	}()
	return ch, nil
}

// await waits for cond on f, whose latest run was st when the wait was
// registered (ok false: none).
func (r *Runtime) await(ctx context.Context, f *fn, cond gantry.WaitCondition, st runner.Status, ok bool) (gantry.ExitStatus, error) {
	var last gantry.ExitStatus
	if ok && !st.Running {
		last = statusExit(st)
	}
	if ok && st.Running {
		var err error
		if last, err = r.waitRun(ctx, f, st.ID); err != nil {
			if errors.Is(err, errRemoved) {
				return gantry.ExitStatus{}, fmt.Errorf("%w while it ran", errRemoved)
			}
			return last, err
		}
		if cond != gantry.WaitRemoved {
			return last, nil
		}
	}
	switch cond {
	case gantry.WaitNextExit:
		return r.awaitNext(ctx, f, st.ID, last)
	case gantry.WaitRemoved:
		return last, r.awaitRemoved(ctx, f)
	}
	return last, nil
}

// awaitNext waits for the first run after baseline to end. A removal
// first ends it with last, the status of the run before, as moby wakes a
// next-exit wait at removal.
func (r *Runtime) awaitNext(ctx context.Context, f *fn, baseline string, last gantry.ExitStatus) (gantry.ExitStatus, error) {
	if serving(f) != nil {
		return last, r.awaitRemoved(ctx, f)
	}
	for {
		st, ok, err := r.latest(ctx, f)
		switch {
		case errors.Is(err, errRemoved):
			return last, nil
		case err != nil:
			return last, err
		case ok && st.ID != baseline:
			if !st.Running {
				return statusExit(st), nil
			}
			es, err := r.waitRun(ctx, f, st.ID)
			if errors.Is(err, errRemoved) {
				return es, fmt.Errorf("%w while it ran", errRemoved)
			}
			return es, err
		}
		if err := gax.Sleep(ctx, r.cfg.PollInterval); err != nil {
			return last, err
		}
	}
}

// awaitRemoved returns once f's function is gone.
func (r *Runtime) awaitRemoved(ctx context.Context, f *fn) error {
	for {
		var err error
		if serving(f) == nil {
			_, _, err = r.latest(ctx, f)
		} else {
			err = r.gone(ctx, f, errNotServing)
		}
		switch {
		case errors.Is(err, errRemoved):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if err := gax.Sleep(ctx, r.cfg.PollInterval); err != nil {
			return err
		}
	}
}
