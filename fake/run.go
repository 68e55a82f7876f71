package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
)

// Linux signal numbers the fake itself sends.
const (
	sigKILL = 9
	sigTERM = 15
	sigCONT = 18
	sigSTOP = 19
)

// run is one run of a container, from Start to its exit. exited, paused
// and errText are guarded by Runtime.mu.
type run struct {
	c       *container
	done    chan struct{} // closed once the run has exited and the state says so
	exited  bool
	paused  bool
	errText string // why the fake ended the run, if it did
	stdin   io.WriteCloser

	// Go-function mode.
	ctx     context.Context
	cancel  context.CancelFunc
	signals chan syscall.Signal
	gate    sync.Mutex // guards gPaused, ended and the writers' partial lines
	resumed sync.Cond
	gPaused bool
	ended   bool
	stdout  streamWriter
	stderr  streamWriter
	proc    Process

	// Host-process mode.
	h *hostRun
}

// waitDone waits for r to exit or ctx to end.
func waitDone(ctx context.Context, r *run) error {
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Start runs a created or exited container. A running container is left
// alone; a paused one is an ErrConflict, as in Docker.
func (rt *Runtime) Start(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, "fake", "start", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	if err != nil {
		return err
	}
	return rt.start(c)
}

// start starts c, as Start and Restart do: a container that waits for its
// restart policy's restart counts as running, as in Docker, and is left
// alone; otherwise its RestartCount and restart delays start again from
// zero. Call with rt.mu held.
func (rt *Runtime) start(c *container) error {
	if r := c.run; r != nil {
		if r.paused {
			return fmt.Errorf("%w: cannot start a paused container, unpause it instead", gantry.ErrConflict)
		}
		return nil
	}
	if c.pending != nil {
		return nil
	}
	if c.removing {
		return fmt.Errorf("%w: the container is marked for removal and cannot be started", gantry.ErrConflict)
	}
	c.restartCount = 0
	c.backoff = 0
	c.manualStop = false
	return rt.run(c)
}

// run starts a new run of c, which is not running: for start, and for a
// restart policy's restart. Call with rt.mu held.
func (rt *Runtime) run(c *container) error {
	r := &run{c: c, done: make(chan struct{})}
	// The start time is taken before the process starts, so that no line
	// it writes is older than StartedAt.
	started := time.Now()
	var err error
	var notRun *execFailure
	if rt.host {
		err = rt.startHost(r)
	} else {
		err = rt.startImage(r)
	}
	if errors.As(err, &notRun) {
		err = nil
	}
	if err != nil {
		return err
	}
	c.run = r
	c.state.Status = gantry.StatusRunning
	c.state.Running = true
	c.state.Paused = false
	c.state.ExitCode = 0
	c.state.Signal = ""
	c.state.Error = ""
	c.state.StartedAt = started
	rt.startHealth(r)
	if notRun != nil {
		// Under an init, as gantry's semantics are, a command that cannot
		// be executed does not fail Start: the init reports it on stderr
		// and the container exits 127 (126 when not executable).
		c.logs.begin()
		var partial []byte
		c.logs.write(gantry.Stderr, &partial, []byte(notRun.err.Error()+"\n"), false)
		r.h = &hostRun{}
		rt.finish(r, gantry.ExitStatus{ExitCode: notRun.code, Error: notRun.err.Error()})
		return nil
	}
	if c.spec.Timeout > 0 {
		rt.wg.Add(1)
		go rt.enforceTimeout(r, c.spec.Timeout)
	}
	return nil
}

// startImage starts the container's Go function. Call with rt.mu held.
func (rt *Runtime) startImage(r *run) error {
	c := r.c
	if c.image.Run == nil {
		return fmt.Errorf("%w: image %s has no Run function", gantry.ErrNotSupported, c.spec.Image)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.signals = make(chan syscall.Signal, signalBuffer)
	r.resumed.L = &r.gate
	r.stdout = streamWriter{r: r, stream: gantry.Stdout}
	r.stderr = streamWriter{r: r, stream: gantry.Stderr}
	p := &r.proc
	p.ContainerID = c.id
	p.Args = append(append(make([]string, 0, len(c.spec.Entrypoint)+len(c.spec.Cmd)), c.spec.Entrypoint...), c.spec.Cmd...)
	p.Env = rt.containerEnv(c)
	p.WorkingDir = c.spec.WorkingDir
	p.User = c.spec.User
	p.Tty = c.spec.Tty
	p.Stdout = &r.stdout
	p.Stderr = &r.stderr
	if c.spec.Tty {
		p.Stderr = &r.stdout
	}
	p.Stdin = eofReader{}
	if c.spec.OpenStdin {
		pr, pw := io.Pipe()
		p.Stdin, r.stdin = pr, pw
	}
	p.Signals = r.signals
	c.logs.begin()
	rt.wg.Add(1)
	go rt.runImage(r)
	return nil
}

func (rt *Runtime) runImage(r *run) {
	defer rt.wg.Done()
	code := r.c.image.Run(r.ctx, &r.proc)
	rt.mu.Lock()
	rt.finish(r, gantry.ExitStatus{ExitCode: code & 0xff})
	rt.mu.Unlock()
}

// finish records the end of r. Later calls for the same run do nothing, so
// a SIGKILL's 137 stands even when the Go function returns afterwards.
// Call with rt.mu held.
func (rt *Runtime) finish(r *run, st gantry.ExitStatus) {
	if r.exited {
		return
	}
	r.exited = true
	c := r.c
	if r.h == nil {
		r.gate.Lock()
		r.ended = true
		r.stdout.flush()
		r.stderr.flush()
		r.resumed.Broadcast()
		r.gate.Unlock()
		r.cancel()
	}
	if r.stdin != nil {
		r.stdin.Close()
	}
	if r.errText != "" {
		st.Error = r.errText
	}
	c.run = nil
	c.state.Status = gantry.StatusExited
	if c.removing {
		c.state.Status = gantry.StatusRemoving
	}
	c.state.Running = false
	c.state.Paused = false
	c.state.ExitCode = st.ExitCode
	c.state.Signal = st.Signal
	c.state.Error = st.Error
	c.state.FinishedAt = time.Now()
	endHealth(c)
	// As Docker's, every exit wakes the waits, a restart policy's too.
	if w := c.exitWait; w != nil {
		w.status = st
		close(w.ch)
		c.exitWait = nil
	}
	close(r.done)
	c.logs.end()
	if rt.restartDue(c, st) {
		rt.scheduleRestart(c, c.state.FinishedAt.Sub(c.state.StartedAt))
	}
}

// signal delivers Linux signal sig to r. As moby does, the stop signal and
// SIGKILL also resume a paused container so that it can act on them.
// Call with rt.mu held.
func (rt *Runtime) signal(r *run, sig int) {
	if r.exited {
		return
	}
	unpause := false
	if r.paused {
		stop := r.c.spec.StopSignal
		unpause = stop == "" || sig == sigKILL
		if !unpause {
			n, _ := gantry.ParseSignal(stop)
			unpause = n == sig
		}
	}
	if r.h != nil {
		r.h.signalMain(sig)
	} else if sig == sigKILL {
		rt.finish(r, gantry.ExitStatus{ExitCode: 128 + sigKILL, Signal: "SIGKILL"})
		return
	} else {
		select {
		case r.signals <- syscall.Signal(sig):
		default:
		}
	}
	if unpause {
		rt.resume(r)
	}
}

// resume ends a pause. Call with rt.mu held.
func (rt *Runtime) resume(r *run) {
	if r.h != nil {
		r.h.signal(sigCONT)
		r.h.settle(false)
	} else {
		r.gate.Lock()
		r.gPaused = false
		r.resumed.Broadcast()
		r.gate.Unlock()
	}
	r.paused = false
	r.c.state.Paused = false
	r.c.state.Status = gantry.StatusRunning
}

// stopParams returns the signal and timeout Stop uses for c with opts.
func stopParams(op string, c *container, opts gantry.StopOptions) (int, time.Duration, error) {
	name := opts.Signal
	if name == "" {
		name = c.spec.StopSignal
	}
	sig := sigTERM
	if name != "" {
		n, err := gantry.ParseSignal(name)
		if err != nil {
			return 0, 0, fmt.Errorf("fake: %s %s: %w", op, c.name, err)
		}
		sig = n
	}
	timeout := gantry.DefaultStopTimeout
	switch {
	case opts.Timeout != nil:
		timeout = *opts.Timeout
	case c.spec.StopTimeout != nil:
		timeout = *c.spec.StopTimeout
	}
	return sig, timeout, nil
}

// stopRun sends sig to r, then waits for it to exit. The SIGKILL that
// follows a positive timeout does not depend on ctx: as moby's
// containerStop runs under context.WithoutCancel, a caller that gives up
// waiting does not cancel the stop, and the run is still killed when the
// timeout elapses. Zero kills at once; a negative timeout never kills.
// Call with rt.mu held; it returns with rt.mu released.
func (rt *Runtime) stopRun(ctx context.Context, r *run, sig int, timeout time.Duration) error {
	rt.signal(r, sig)
	switch {
	case timeout == 0:
		rt.signal(r, sigKILL)
	case timeout > 0 && !r.exited && !rt.closed:
		rt.wg.Add(1)
		go rt.killAfter(r, timeout)
	}
	rt.mu.Unlock()
	return waitDone(ctx, r)
}

// killAfter kills r with SIGKILL unless it exits within timeout.
func (rt *Runtime) killAfter(r *run, timeout time.Duration) {
	defer rt.wg.Done()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return
	case <-t.C:
	}
	rt.mu.Lock()
	rt.signal(r, sigKILL)
	rt.mu.Unlock()
}

// Stop sends the stop signal, waits for the timeout, then kills the
// container with SIGKILL. A container that is not running is left alone.
func (rt *Runtime) Stop(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, "fake", "stop", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return err
	}
	sig, timeout, err := stopParams("stop", c, opts)
	if err != nil || c.run == nil {
		cancelRestart(c)
		rt.mu.Unlock()
		return err
	}
	c.manualStop = true
	return rt.stopRun(ctx, c.run, sig, timeout)
}

func (rt *Runtime) enforceTimeout(r *run, d time.Duration) {
	defer rt.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.done:
		return
	case <-t.C:
	}
	rt.mu.Lock()
	if r.exited {
		rt.mu.Unlock()
		return
	}
	r.errText = fmt.Sprintf("stopped: the run exceeded its Timeout of %s", d)
	r.c.manualStop = true
	sig, timeout, _ := stopParams("timeout", r.c, gantry.StopOptions{})
	rt.stopRun(context.Background(), r, sig, timeout)
}

// Kill sends signal (default SIGKILL) to the container. A container that
// is not running is an ErrConflict. With SIGKILL, Kill returns once the
// container has exited, as Docker's does.
func (rt *Runtime) Kill(ctx context.Context, id string, signal string) (err error) {
	defer gantry.WrapOp(&err, "fake", "kill", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	sig := sigKILL
	if signal != "" {
		n, err := gantry.ParseSignal(signal)
		if err != nil {
			return err
		}
		sig = n
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return err
	}
	r := c.run
	if r == nil {
		// Docker's kill of a restarting container calls the restart off.
		restarting := cancelRestart(c)
		rt.mu.Unlock()
		if restarting {
			return nil
		}
		return fmt.Errorf("%w: container %s is not running", gantry.ErrConflict, c.id)
	}
	// As Docker 20.10's, a kill with any signal counts as a manual stop:
	// the exit that follows is not restarted.
	c.manualStop = true
	rt.signal(r, sig)
	rt.mu.Unlock()
	if sig == sigKILL {
		return waitDone(ctx, r)
	}
	return nil
}

// Restart stops the container as Stop does (if it runs), then starts it.
// It keeps its ID, name and logs; as Start, it sets RestartCount back to
// 0, and a pending restart of its restart policy is called off.
func (rt *Runtime) Restart(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, "fake", "restart", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return err
	}
	sig, timeout, err := stopParams("restart", c, opts)
	if err != nil {
		rt.mu.Unlock()
		return err
	}
	cancelRestart(c)
	for c.run != nil {
		c.manualStop = true
		if err := rt.stopRun(ctx, c.run, sig, timeout); err != nil {
			return err
		}
		rt.mu.Lock()
		cancelRestart(c)
	}
	defer rt.mu.Unlock()
	switch {
	case rt.closed:
		return gantry.ErrClosed
	case c.removed:
		return fmt.Errorf("%w: container %s was removed while stopping", gantry.ErrNotFound, id)
	}
	return rt.start(c)
}

// Wait blocks until the container meets cond, with moby's semantics:
// WaitNotRunning returns at once for a container that is not running (a
// created one reports exit code 0); WaitNextExit waits for the next exit,
// even of a container not yet started; WaitRemoved waits for removal, and
// removal also ends the other two waits.
func (rt *Runtime) Wait(ctx context.Context, id string, cond gantry.WaitCondition) (_ gantry.ExitStatus, err error) {
	defer gantry.WrapOp(&err, "fake", "wait", id)
	w, now, err := rt.registerWait(ctx, id, cond, false)
	if err != nil || w == nil {
		return now, err
	}
	return rt.await(ctx, w)
}

// RegisterWait registers a wait as Wait does and returns once it is in
// place (see gantry.WaitRegisterer).
func (rt *Runtime) RegisterWait(ctx context.Context, id string, cond gantry.WaitCondition) (_ <-chan gantry.WaitResult, err error) {
	defer gantry.WrapOp(&err, "fake", "wait", id)
	w, now, err := rt.registerWait(ctx, id, cond, true)
	if err != nil {
		return nil, err
	}
	ch := make(chan gantry.WaitResult, 1)
	if w == nil {
		ch <- gantry.WaitResult{Status: now}
		close(ch)
		return ch, nil
	}
	go func() {
		defer rt.wg.Done()
		var res gantry.WaitResult
		res.Status, res.Err = rt.await(ctx, w)
		gantry.WrapOp(&res.Err, "fake", "wait", id)
		ch <- res
		close(ch)
	}()
	return ch, nil
}

// registerWait returns the wait point that cond on container id waits
// for, or, when the condition holds already, no point and the status to
// return now. With hold it counts a waiting goroutine in rt.wg (for the
// caller to start) whenever it returns a point.
func (rt *Runtime) registerWait(ctx context.Context, id string, cond gantry.WaitCondition, hold bool) (*waitPoint, gantry.ExitStatus, error) {
	if err := cond.Validate(); err != nil {
		return nil, gantry.ExitStatus{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, gantry.ExitStatus{}, err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	if err != nil {
		return nil, gantry.ExitStatus{}, err
	}
	var w **waitPoint
	switch {
	case cond == gantry.WaitRemoved:
		w = &c.removedWait
	case cond != gantry.WaitNextExit && c.run == nil && c.pending == nil:
		// A container waiting for its restart runs, for Docker.
		return nil, c.exitStatus(), nil
	default:
		w = &c.exitWait
	}
	if *w == nil {
		*w = &waitPoint{ch: make(chan struct{})}
	}
	if hold {
		rt.wg.Add(1)
	}
	return *w, gantry.ExitStatus{}, nil
}

// await waits for w to be woken, ctx to end or the Runtime to close.
func (rt *Runtime) await(ctx context.Context, w *waitPoint) (gantry.ExitStatus, error) {
	select {
	case <-w.ch:
		return w.status, nil
	case <-ctx.Done():
		return gantry.ExitStatus{}, ctx.Err()
	case <-rt.done:
		select {
		case <-w.ch:
			return w.status, nil
		default:
			return gantry.ExitStatus{}, gantry.ErrClosed
		}
	}
}

// Pause suspends the container: in host-process mode its process group
// gets SIGSTOP, and Pause returns once every process has stopped, as
// docker pause returns once the cgroup is frozen; in Go-function mode its
// writes to stdout and stderr block until Unpause.
func (rt *Runtime) Pause(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, "fake", "pause", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	if err != nil {
		return err
	}
	r := c.run
	switch {
	case r == nil:
		return fmt.Errorf("%w: container %s is not running", gantry.ErrConflict, c.id)
	case r.paused:
		return fmt.Errorf("%w: container %s is already paused", gantry.ErrConflict, c.id)
	}
	if r.h != nil {
		r.h.signal(sigSTOP)
		r.h.settle(true)
	} else {
		r.gate.Lock()
		r.gPaused = true
		r.gate.Unlock()
	}
	r.paused = true
	c.state.Paused = true
	c.state.Status = gantry.StatusPaused
	return nil
}

// Unpause resumes a paused container. A container that is not paused is an
// ErrConflict.
func (rt *Runtime) Unpause(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, "fake", "unpause", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	if err != nil {
		return err
	}
	if c.run == nil || !c.run.paused {
		return fmt.Errorf("%w: container %s is not paused", gantry.ErrConflict, c.id)
	}
	rt.resume(c.run)
	return nil
}
