package gantry

import (
	"context"
	"fmt"
)

// Validate reports a condition that is none of Docker's three as
// ErrInvalidArgument. The zero value is valid: it means WaitNotRunning.
func (c WaitCondition) Validate() error {
	switch c {
	case "", WaitNotRunning, WaitNextExit, WaitRemoved:
		return nil
	}
	return &FieldError{Field: "WaitCondition", Value: string(c), Reason: "want not-running, next-exit or removed"}
}

// WaitResult is the outcome of a registered wait: the exit status, or why
// the wait failed.
type WaitResult struct {
	Status ExitStatus
	Err    error
}

// WaitRegisterer registers a wait and returns as soon as the backend holds
// it, as moby's ContainerWait returns once the daemon has registered the
// wait: whatever happens to the container after RegisterWait returns is
// seen by the wait. That is what makes "wait for the next exit, then
// start" deterministic. Every backend of this module implements it; call
// it through the package-level RegisterWait.
type WaitRegisterer interface {
	// RegisterWait checks its arguments, registers a wait for cond on the
	// container and returns a channel that receives one WaitResult and
	// is then closed. An error returned here (no such container, an
	// invalid condition, a closed Runtime) means nothing was registered.
	// ctx bounds the whole wait: when it ends, the result carries an error
	// that wraps ctx's.
	RegisterWait(ctx context.Context, id string, cond WaitCondition) (<-chan WaitResult, error)
}

// RegisterWait registers a wait for cond on container id of rt and returns
// once the backend holds it (see WaitRegisterer). A backend without
// WaitRegisterer gives ErrNotSupported.
//
//	ch, err := gantry.RegisterWait(ctx, rt, id, gantry.WaitNextExit)
//	if err != nil {
//		return err
//	}
//	if err := rt.Start(ctx, id); err != nil {
//		return err
//	}
//	res := <-ch // the exit of the run Start began
func RegisterWait(ctx context.Context, rt Runtime, id string, cond WaitCondition) (<-chan WaitResult, error) {
	if w, ok := rt.(WaitRegisterer); ok {
		return w.RegisterWait(ctx, id, cond)
	}
	return nil, unsupported(rt, "register wait")
}

// Await receives the result of a wait that RegisterWait returned; a
// backend's Wait is
//
//	return gantry.Await(r.RegisterWait(ctx, id, cond))
func Await(ch <-chan WaitResult, err error) (ExitStatus, error) {
	if err != nil {
		return ExitStatus{}, err
	}
	res, ok := <-ch
	if !ok {
		return ExitStatus{}, fmt.Errorf("wait: the backend closed the result channel without a result: %w", ErrUnavailable)
	}
	return res.Status, res.Err
}
