package docker

import (
	"context"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/gantryhq/gantry"
)

// Wait blocks until the container meets cond, with the daemon's semantics:
// not-running returns at once for a container that is not running (0 for
// one never started), next-exit waits for the next exit, removed for the
// removal, and a removal ends every wait.
func (r *Runtime) Wait(ctx context.Context, id string, cond gantry.WaitCondition) (gantry.ExitStatus, error) {
	return gantry.Await(r.RegisterWait(ctx, id, cond))
}

// RegisterWait registers a wait with the daemon and returns once the
// daemon holds it: moby's ContainerWait returns when the daemon has
// answered the request's headers, which it does after registering the
// wait. See gantry.WaitRegisterer.
func (r *Runtime) RegisterWait(ctx context.Context, id string, cond gantry.WaitCondition) (_ <-chan gantry.WaitResult, err error) {
	defer gantry.WrapOp(&err, backend, "wait", id)
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := cond.Validate(); err != nil {
		return nil, err
	}
	if cond == "" {
		cond = gantry.WaitNotRunning
	}
	wctx, cancel := r.join(ctx)
	c, err := r.resolve(wctx, id)
	if err != nil {
		cancel()
		return nil, err
	}
	w := r.cli.ContainerWait(wctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitCondition(cond)})
	// A request the daemon refused has its error ready now; nothing was
	// registered.
	select {
	case err := <-w.Error:
		cancel()
		return nil, r.closedOr(classify(err, "wait"))
	default:
	}
	ch := make(chan gantry.WaitResult, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		var res gantry.WaitResult
		select {
		case resp := <-w.Result:
			res.Status = gantry.ExitStatus{ExitCode: int(resp.StatusCode), Signal: exitSignal(int(resp.StatusCode))}
			if resp.Error != nil {
				res.Status.Error = resp.Error.Message
			}
		case err := <-w.Error:
			res.Err = r.closedOr(classify(err, "wait"))
		}
		gantry.WrapOp(&res.Err, backend, "wait", id)
		ch <- res
		close(ch)
	}()
	return ch, nil
}
