package gcptest

import (
	"context"
	"time"

	"github.com/gantryhq/gantry"
)

// runner runs workloads (today: task attempts of job executions) as
// containers of a gantry.Runtime, follows their output into Cloud Logging
// and reports how they ended. It is the one place the emulator touches
// the runtime, so Services and Instances can reuse it.
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
	started  time.Time
	finished time.Time
}

// run runs w to completion. onStart is called once the process runs.
// Closing stop stops the container gracefully (SIGTERM, then SIGKILL after
// the grace period); ending ctx kills it at once.
func (r *runner) run(ctx context.Context, w workload, stop <-chan struct{}, onStart func(time.Time)) outcome {
	bg := context.WithoutCancel(ctx)
	c, err := r.rt.Create(ctx, w.spec)
	if err != nil {
		return outcome{err: err, finished: r.now()}
	}
	defer r.rt.Remove(bg, c.ID, gantry.RemoveOptions{Force: true})
	if err := r.rt.Start(ctx, c.ID); err != nil {
		return outcome{err: err, finished: r.now()}
	}
	out := outcome{started: r.now()}
	onStart(out.started)

	logsDone := make(chan struct{})
	lr, lerr := r.rt.Logs(bg, c.ID, gantry.LogsOptions{Follow: true})
	if lerr != nil {
		close(logsDone)
	} else {
		go func() {
			defer close(logsDone)
			// Cloud Run's logging agent makes one entry of each line the
			// container writes, however long, and one of output that ends
			// without a newline: the parts the embedded runtime splits a
			// long line into are joined again, and the flag is lost.
			var pending [3]*gantry.LogEntry
			for {
				e, err := lr.Next()
				if err != nil {
					for _, p := range pending {
						if p != nil {
							r.ingest(w, *p)
						}
					}
					return
				}
				if p := pending[e.Stream]; p != nil {
					p.Line += e.Line
					e.Line, e.Time = p.Line, p.Time
				}
				if e.Partial {
					e.Partial = false
					pending[e.Stream] = &e
					continue
				}
				pending[e.Stream] = nil
				r.ingest(w, e)
			}
		}()
	}

	type waited struct {
		st  gantry.ExitStatus
		err error
	}
	waitCh := make(chan waited, 1)
	go func() {
		st, err := r.rt.Wait(bg, c.ID, gantry.WaitNotRunning)
		waitCh <- waited{st, err}
	}()
	var timeout <-chan time.Time
	if w.timeout > 0 {
		t := time.NewTimer(w.timeout)
		defer t.Stop()
		timeout = t.C
	}
	grace := r.grace
	var res waited
	select {
	case res = <-waitCh:
	case <-timeout:
		out.timedOut = true
		r.rt.Stop(bg, c.ID, gantry.StopOptions{Timeout: &grace})
		res = <-waitCh
	case <-stop:
		out.stopped = true
		r.rt.Stop(bg, c.ID, gantry.StopOptions{Timeout: &grace})
		res = <-waitCh
	case <-ctx.Done():
		out.stopped = true
		r.rt.Kill(bg, c.ID, "SIGKILL")
		res = <-waitCh
	}
	out.finished = r.now()
	if res.err != nil {
		out.err = res.err
	} else {
		out.exitCode = res.st.ExitCode
		if res.st.Signal != "" {
			if n, err := gantry.ParseSignal(res.st.Signal); err == nil {
				out.signal = n
			}
		}
	}
	// A following reader ends once the container has stopped; close it
	// if the server is going away so that nothing outlives Close.
	if lerr == nil {
		select {
		case <-logsDone:
		case <-ctx.Done():
			lr.Close()
			<-logsDone
		}
		lr.Close()
	}
	return out
}
