package gcptest

import (
	"context"
	"time"

	"github.com/gantryhq/gantry"
)

// runner runs workloads (task attempts of job executions, Functions'
// instances) as containers of a gantry.Runtime, follows their output into
// Cloud Logging and reports how they ended. It is the one place the
// emulator touches the runtime, so Services and Instances can reuse it.
type runner struct {
	rt     gantry.Runtime
	grace  time.Duration
	now    func() time.Time
	ingest func(workload, gantry.LogEntry)
}

// workload is one container run.
type workload struct {
	spec gantry.Spec
	// timeout bounds the run; zero means none. When it passes the
	// container gets SIGTERM, then SIGKILL after the grace period.
	timeout time.Duration
	// logs says how the container's output is written to Cloud Logging.
	logs logTarget
}

// outcome is how a workload ended.
type outcome struct {
	// err is a failure of the platform (the container could not be
	// created or started); nothing ran.
	err error
	// exitCode is the exit code when the process exited by itself;
	// signal is the number of the signal that killed it, or 0.
	exitCode int
	signal   int
	// timedOut: the timeout stopped it; stopped: a cancellation did.
	timedOut bool
	stopped  bool
	// failure, when set, is why the attempt failed in Cloud Run's words
	// (a startup probe that never passed, for example), in place of the
	// message the exit code or signal would give.
	failure string
	// container names the container the outcome is about, in a task of
	// more than one.
	container string
	started   time.Time
	finished  time.Time
}

// run runs w to completion. onStart is called once the process runs.
// Closing stop stops the container gracefully (SIGTERM, then SIGKILL after
// the grace period); ending ctx kills it at once.
func (r *runner) run(ctx context.Context, w workload, stop <-chan struct{}, onStart func(time.Time)) outcome {
	p, err := r.start(ctx, w)
	if err != nil {
		return outcome{err: err, finished: r.now()}
	}
	out := outcome{started: p.started}
	onStart(out.started)
	var timeout <-chan time.Time
	if w.timeout > 0 {
		t := time.NewTimer(w.timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-p.exited:
	case <-timeout:
		out.timedOut = true
		p.stop()
	case <-stop:
		out.stopped = true
		p.stop()
	case <-ctx.Done():
		out.stopped = true
		p.kill()
	}
	<-p.exited
	p.result(&out)
	out.finished = r.now()
	p.close(ctx)
	return out
}

// proc is a running container of a workload.
type proc struct {
	r       *runner
	w       workload
	id      string
	started time.Time
	// exited is closed once the container has exited; res is then set.
	exited   chan struct{}
	res      gantry.ExitStatus
	resErr   error
	lr       gantry.LogReader
	logsDone chan struct{}
}

// start creates and starts w's container and follows its output into
// Cloud Logging. On an error nothing is left behind.
func (r *runner) start(ctx context.Context, w workload) (*proc, error) {
	bg := context.WithoutCancel(ctx)
	c, err := r.rt.Create(ctx, w.spec)
	if err != nil {
		return nil, err
	}
	if err := r.rt.Start(ctx, c.ID); err != nil {
		r.rt.Remove(bg, c.ID, gantry.RemoveOptions{Force: true})
		return nil, err
	}
	p := &proc{r: r, w: w, id: c.ID, started: r.now(), exited: make(chan struct{}), logsDone: make(chan struct{})}
	lr, lerr := r.rt.Logs(bg, c.ID, gantry.LogsOptions{Follow: true})
	if lerr != nil {
		close(p.logsDone)
	} else {
		p.lr = lr
		go p.follow()
	}
	go func() {
		p.res, p.resErr = r.rt.Wait(bg, c.ID, gantry.WaitNotRunning)
		close(p.exited)
	}()
	return p, nil
}

// follow writes the container's output to Cloud Logging until it ends.
// Cloud Run's logging agent makes one entry of each line the container
// writes, however long, and one of output that ends without a newline:
// the parts the embedded runtime splits a long line into are joined
// again, and the flag is lost.
func (p *proc) follow() {
	defer close(p.logsDone)
	var pending [3]*gantry.LogEntry
	for {
		e, err := p.lr.Next()
		if err != nil {
			for _, q := range pending {
				if q != nil {
					p.r.ingest(p.w, *q)
				}
			}
			return
		}
		if q := pending[e.Stream]; q != nil {
			q.Line += e.Line
			e.Line, e.Time = q.Line, q.Time
		}
		if e.Partial {
			e.Partial = false
			pending[e.Stream] = &e
			continue
		}
		pending[e.Stream] = nil
		p.r.ingest(p.w, e)
	}
}

// stop stops the container as Cloud Run does: SIGTERM, then SIGKILL after
// the grace period. It returns once the container has exited.
func (p *proc) stop() {
	grace := p.r.grace
	p.r.rt.Stop(context.Background(), p.id, gantry.StopOptions{Timeout: &grace})
	<-p.exited
}

// kill kills the container at once.
func (p *proc) kill() {
	p.r.rt.Kill(context.Background(), p.id, "SIGKILL")
}

// result adds how the exited container ended to out.
func (p *proc) result(out *outcome) {
	if p.resErr != nil {
		out.err = p.resErr
		return
	}
	out.exitCode = p.res.ExitCode
	if p.res.Signal != "" {
		if n, err := gantry.ParseSignal(p.res.Signal); err == nil {
			out.signal = n
		}
	}
}

// failed reports whether the exited container ended in failure.
func (p *proc) failed() bool {
	return p.resErr != nil || p.res.ExitCode != 0 || p.res.Signal != ""
}

// close waits for the exited container's output to be logged and removes
// the container. A following reader ends once the container has stopped;
// it is closed if ctx (the Server) ends first, so that nothing outlives
// Close.
func (p *proc) close(ctx context.Context) {
	if p.lr != nil {
		select {
		case <-p.logsDone:
		case <-ctx.Done():
			p.lr.Close()
			<-p.logsDone
		}
		p.lr.Close()
	}
	p.r.rt.Remove(context.WithoutCancel(ctx), p.id, gantry.RemoveOptions{Force: true})
}
