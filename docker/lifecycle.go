package docker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/gantryhq/gantry"
)

func isNotFound(err error) bool { return errors.Is(err, gantry.ErrNotFound) }

// Start starts a created or exited container. Starting a running container
// succeeds and does nothing (the daemon answers 304).
func (r *Runtime) Start(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, backend, "start", id)
	if err := r.state.Err(); err != nil {
		return err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if _, err := r.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return r.closedOr(classify(err, "start"))
	}
	if !c.State.Running {
		r.armTimeout(ctx, c.ID)
	}
	return nil
}

// stopParams checks a stop's signal and timeout before any call, and
// returns the signal's number (0 for the container's own stop signal).
func stopParams(opts gantry.StopOptions) (int, error) {
	sig := 0
	if opts.Signal != "" {
		n, err := gantry.ParseSignal(opts.Signal)
		if err != nil {
			return 0, err
		}
		sig = n
	}
	if t := opts.Timeout; t != nil && (*t > gantry.MaxDuration || *t < -gantry.MaxDuration) {
		return 0, &gantry.FieldError{Field: "Timeout", Value: t.String(), Reason: "is longer than a year; is the unit right?"}
	}
	return sig, nil
}

// Stop stops a running container as Docker does: the stop signal, then
// SIGKILL when the timeout ends. A container that is not running is left
// as it is.
func (r *Runtime) Stop(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, backend, "stop", id)
	if err := r.state.Err(); err != nil {
		return err
	}
	sig, err := stopParams(opts)
	if err != nil {
		return err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	return r.stop(ctx, c, sig, opts.Timeout)
}

// stop stops container c with signal sig (0: its stop signal) and timeout
// (nil: its stop timeout, else Docker's default).
func (r *Runtime) stop(ctx context.Context, c container.InspectResponse, sig int, timeout *time.Duration) error {
	if sig != 0 && !r.stopSignals && sig != stopSignal(c) {
		return r.stopBySignal(ctx, c, sig, timeout)
	}
	opts := client.ContainerStopOptions{}
	if sig != 0 {
		opts.Signal = strconv.Itoa(sig)
	}
	if timeout != nil {
		opts.Timeout = new(seconds(*timeout))
	}
	if _, err := r.cli.ContainerStop(ctx, c.ID, opts); err != nil {
		return r.closedOr(classify(err, "stop"))
	}
	return nil
}

// stopSignal returns the number of c's stop signal.
func stopSignal(c container.InspectResponse) int {
	if c.Config.StopSignal == "" {
		return 15
	}
	n, err := gantry.ParseSignal(c.Config.StopSignal)
	if err != nil {
		return 15
	}
	return n
}

// stopBySignal does what the daemon's stop does, for a daemon that takes
// no signal with stop (API 1.41 and older): send sig, wait up to the
// timeout for the container to stop, then SIGKILL it and wait for that.
// As the daemon's stop, it goes on when the caller stops waiting; only
// Close ends it early.
func (r *Runtime) stopBySignal(ctx context.Context, c container.InspectResponse, sig int, timeout *time.Duration) error {
	grace := gantry.DefaultStopTimeout
	switch {
	case timeout != nil:
		grace = *timeout
	case c.Config.StopTimeout != nil:
		grace = time.Duration(*c.Config.StopTimeout) * time.Second
	}
	if grace > 0 {
		grace = time.Duration(seconds(grace)) * time.Second
	}
	done := make(chan error, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		done <- r.signalThenKill(c.ID, sig, grace)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return r.closedOr(fmt.Errorf("stop: %w", ctx.Err()))
	}
}

func (r *Runtime) signalThenKill(id string, sig int, grace time.Duration) error {
	ctx := r.base
	_, err := r.cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: strconv.Itoa(sig)})
	switch {
	case errors.Is(classify(err, ""), gantry.ErrConflict):
		return nil // it stopped already: nothing to do, as for the daemon
	case err != nil:
		return r.closedOr(classify(err, "send the stop signal"))
	}
	if grace != 0 {
		wctx := ctx
		if grace > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, grace)
			defer cancel()
		}
		w := r.cli.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-w.Result:
			return nil
		case err := <-w.Error:
			if r.base.Err() != nil {
				return gantry.ErrClosed
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return classify(err, "wait for the stop signal to take effect")
			}
		}
	}
	_, err = r.cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
	if err != nil && !errors.Is(classify(err, ""), gantry.ErrConflict) {
		return r.closedOr(classify(err, "kill after the stop timeout"))
	}
	w := r.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-w.Result:
		return nil
	case err := <-w.Error:
		return r.closedOr(classify(err, "wait for the kill"))
	}
}

// Kill sends signal to the container's main process ("" is SIGKILL). A
// container that is not running is an ErrConflict, as in Docker.
func (r *Runtime) Kill(ctx context.Context, id string, signal string) (err error) {
	defer gantry.WrapOp(&err, backend, "kill", id)
	if err := r.state.Err(); err != nil {
		return err
	}
	opts := client.ContainerKillOptions{}
	if signal != "" {
		n, err := gantry.ParseSignal(signal)
		if err != nil {
			return err
		}
		// By number: Docker's names and gantry's differ for the
		// real-time signals.
		opts.Signal = strconv.Itoa(n)
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if _, err := r.cli.ContainerKill(ctx, c.ID, opts); err != nil {
		return r.closedOr(classify(err, "kill"))
	}
	return nil
}

// Remove removes the container; Force kills a running one first.
func (r *Runtime) Remove(ctx context.Context, id string, opts gantry.RemoveOptions) (err error) {
	defer gantry.WrapOp(&err, backend, "remove", id)
	if err := r.state.Err(); err != nil {
		return err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if _, err := r.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: opts.Force, RemoveVolumes: opts.RemoveVolumes}); err != nil {
		return r.closedOr(classify(err, "remove"))
	}
	r.disarmTimeout(c.ID)
	r.log.Debug("removed", zap.String("id", c.ID))
	return nil
}

// Restart stops the container (if it runs) and starts it again, keeping
// its ID, name and logs.
func (r *Runtime) Restart(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, backend, "restart", id)
	if err := r.state.Err(); err != nil {
		return err
	}
	sig, err := stopParams(opts)
	if err != nil {
		return err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if sig != 0 && !r.stopSignals && sig != stopSignal(c) {
		// The daemon would ignore the signal: stop as it would with one,
		// then start.
		if err := r.stopBySignal(ctx, c, sig, opts.Timeout); err != nil {
			return err
		}
		if _, err := r.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
			return r.closedOr(classify(err, "start"))
		}
	} else {
		ro := client.ContainerRestartOptions{}
		if sig != 0 {
			ro.Signal = strconv.Itoa(sig)
		}
		if opts.Timeout != nil {
			ro.Timeout = new(seconds(*opts.Timeout))
		}
		if _, err := r.cli.ContainerRestart(ctx, c.ID, ro); err != nil {
			return r.closedOr(classify(err, "restart"))
		}
	}
	r.armTimeout(ctx, c.ID)
	return nil
}

// Pause freezes every process of a running container.
func (r *Runtime) Pause(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, backend, "pause", id)
	return r.simple(ctx, id, "pause", func(ctx context.Context, full string) error {
		if _, err := r.cli.ContainerPause(ctx, full, client.ContainerPauseOptions{}); err != nil {
			return err
		}
		return r.settlePaused(ctx, full, true)
	})
}

// Unpause thaws a paused container.
func (r *Runtime) Unpause(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, backend, "unpause", id)
	return r.simple(ctx, id, "unpause", func(ctx context.Context, full string) error {
		if _, err := r.cli.ContainerUnpause(ctx, full, client.ContainerUnpauseOptions{}); err != nil {
			return err
		}
		return r.settlePaused(ctx, full, false)
	})
}

// settleTimeout bounds settlePaused.
const settleTimeout = 5 * time.Second

// settlePaused waits until the daemon reports the container paused (or
// not), as it was just made. Docker 20.10 sets the state when pause or
// unpause returns, and again when containerd's paused or resumed event
// arrives, later: an unpause that follows a pause closely can be undone in
// the state (not in the container) by the pause's late event, until the
// resume's own event comes. Inspect after Unpause must not see that.
func (r *Runtime) settlePaused(ctx context.Context, id string, paused bool) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		res, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return nil // the operation succeeded; the state is the daemon's to report
		case err != nil:
			return err
		case res.Container.State == nil || res.Container.State.Paused == paused || !res.Container.State.Running:
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

// Rename gives the container a new name, under Docker's name rule.
func (r *Runtime) Rename(ctx context.Context, id, name string) (err error) {
	defer gantry.WrapOp(&err, backend, "rename", id)
	if !gantry.ValidName(name) {
		return &gantry.FieldError{Field: "name", Value: name, Reason: "must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (Docker's rule)"}
	}
	return r.simple(ctx, id, "rename", func(ctx context.Context, full string) error {
		_, err := r.cli.ContainerRename(ctx, full, client.ContainerRenameOptions{NewName: name})
		return err
	})
}

// Update changes the container's CPU and memory limits, as docker update
// does: a zero field leaves that limit as it is.
func (r *Runtime) Update(ctx context.Context, id string, res gantry.Resources) (err error) {
	defer gantry.WrapOp(&err, backend, "update", id)
	// Spec.Validate holds the rules for resources; the image only makes
	// the spec whole.
	probe := gantry.Spec{Image: "scratch", Resources: res}
	if err := probe.Validate(); err != nil {
		return err
	}
	if res.GPUs > 0 {
		return fmt.Errorf("Resources.GPUs: %w: %s", gantry.ErrNotSupported, noteGPU)
	}
	limits := resources(res)
	if limits.Memory > 0 {
		// Docker sets a container's swap limit to twice its memory when
		// none is given at create, and refuses to raise the memory above
		// that swap limit unless the swap limit moves with it: keep the
		// create-time rule.
		limits.MemorySwap = 2 * limits.Memory
	}
	return r.simple(ctx, id, "update", func(ctx context.Context, full string) error {
		_, err := r.cli.ContainerUpdate(ctx, full, client.ContainerUpdateOptions{Resources: &limits})
		return err
	})
}

// simple resolves id and calls f with the container's full ID: the shape
// of every operation that is one call to the daemon.
func (r *Runtime) simple(ctx context.Context, id, what string, f func(context.Context, string) error) error {
	if err := r.state.Err(); err != nil {
		return err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if err := f(ctx, c.ID); err != nil {
		return r.closedOr(classify(err, what))
	}
	return nil
}
