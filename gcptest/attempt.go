package gcptest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// attemptContainer is one container of a task attempt.
type attemptContainer struct {
	name  string
	w     workload
	probe *probeSpec
	deps  []int // indexes of the containers it depends on

	p       *proc
	ready   bool // started, and its startup probe (if any) passed
	exited  bool
	stopped bool // the attempt stopped it
}

// attemptEvent is something that happened to container i: it exited, or
// its startup probe passed or failed for good.
type attemptEvent struct {
	i       int
	exited  bool
	passed  bool
	failure string
}

// runAttempt runs the containers of one task attempt as Cloud Run does
// (RULES.md, "Containers of a task"). Containers without dependencies
// start together; a container starts once every container it depends on
// has started and passed its startup probe. The attempt fails at the
// first container that exits with an error, is killed, exits before its
// startup probe passed, or whose probe never passes: the others then get
// SIGTERM, then SIGKILL after the grace period, and those not started
// never start. Otherwise it ends when every container has exited. The
// outcome is that of the first failure, or else of containers[0].
// timeout counts from the first start; closing stop stops every
// container gracefully, ending ctx kills them.
func (s *Server) runAttempt(ctx context.Context, cs []*attemptContainer, timeout time.Duration, stop <-chan struct{}, onStart func(time.Time)) outcome {
	return s.runContainers(ctx, cs, timeout, stop, onStart, runHooks{})
}

// runHooks adapt runContainers to an instance of a service, which
// serves until it is stopped.
type runHooks struct {
	// onReady, when set, is called once every container has started
	// and passed its startup probe.
	onReady func()
	// exitEnds makes the first container to exit end the run, whatever
	// its exit code, as it ends an instance of a service.
	exitEnds bool
}

// runContainers is runAttempt with hooks.
func (s *Server) runContainers(ctx context.Context, cs []*attemptContainer, timeout time.Duration, stop <-chan struct{}, onStart func(time.Time), hooks runHooks) outcome {
	probeCtx, cancelProbes := context.WithCancel(ctx)
	defer cancelProbes()
	// Each container sends at most two events (its probe's and its exit),
	// so no sender ever blocks.
	events := make(chan attemptEvent, 2*len(cs))
	var wg sync.WaitGroup
	defer wg.Wait()

	var (
		out      outcome
		decided  = -1 // the container whose failure decides the outcome
		stopping bool
		running  int
		timer    *time.Timer
		timedOut <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	stopAll := func(kill bool) {
		stopping = true
		cancelProbes()
		for _, c := range cs {
			if c.p == nil || c.exited || c.stopped {
				continue
			}
			c.stopped = true
			wg.Add(1)
			go func(p *proc) {
				defer wg.Done()
				if kill {
					p.kill()
				} else {
					p.stop()
				}
			}(c.p)
		}
	}
	fail := func(i int, failure string) {
		if decided < 0 && !stopping {
			decided, out.failure = i, failure
			stopAll(false)
		}
	}
	start := func(i int) {
		c := cs[i]
		p, err := s.runner.start(ctx, c.w)
		if err != nil {
			out.err = err
			fail(i, "")
			return
		}
		c.p = p
		running++
		if out.started.IsZero() {
			out.started = p.started
			onStart(p.started)
			if timeout > 0 {
				timer = time.NewTimer(timeout)
				timedOut = timer.C
			}
		}
		probed := make(chan struct{})
		if c.probe == nil {
			c.ready = true
			close(probed)
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(probed)
				if passed, failure := c.probe.run(probeCtx, c.name, p.exited); passed || failure != "" {
					events <- attemptEvent{i: i, passed: passed, failure: failure}
				}
			}()
		}
		// The exit is reported after the probe's verdict, so that a
		// container that passed its probe and then exited is not taken
		// for one that exited before it.
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-p.exited
			<-probed
			events <- attemptEvent{i: i, exited: true}
		}()
	}
	// startReady starts every container not yet started whose
	// dependencies are all ready, until none is left to start.
	startReady := func() {
		for progress := true; progress && !stopping; {
			progress = false
			for i, c := range cs {
				if c.p != nil || stopping {
					continue
				}
				ready := true
				for _, d := range c.deps {
					ready = ready && cs[d].ready
				}
				if ready {
					start(i)
					progress = true
				}
			}
		}
	}

	// notifyReady calls onReady once every container is ready.
	notifyReady := func() {
		if hooks.onReady == nil || stopping {
			return
		}
		for _, c := range cs {
			if !c.ready || c.exited {
				return
			}
		}
		hooks.onReady()
		hooks.onReady = nil
	}

	startReady()
	notifyReady()
	for running > 0 {
		select {
		case ev := <-events:
			c := cs[ev.i]
			switch {
			case ev.exited:
				c.exited = true
				running--
				switch {
				case c.stopped:
				case c.p.failed():
					fail(ev.i, "")
				case !c.ready:
					fail(ev.i, fmt.Sprintf("The container %q exited before its startup probe succeeded.", c.name))
				case hooks.exitEnds:
					fail(ev.i, fmt.Sprintf("The container %q exited.", c.name))
				}
			case ev.passed:
				c.ready = true
			default:
				fail(ev.i, ev.failure)
			}
			startReady()
			notifyReady()
		case <-timedOut:
			timedOut = nil
			if !stopping {
				out.timedOut = true
				stopAll(false)
			}
		case <-stop:
			stop = nil
			if !stopping {
				out.stopped = true
				stopAll(false)
			}
		case <-ctx.Done():
			out.stopped = true
			stopAll(true)
			for running > 0 {
				if ev := <-events; ev.exited {
					running--
				}
			}
		}
	}
	cancelProbes()
	if decided < 0 {
		decided = 0
	}
	if d := cs[decided]; d.p != nil && out.err == nil {
		d.p.result(&out)
	}
	if len(cs) > 1 {
		out.container = cs[decided].name
	}
	out.finished = s.now()
	for _, c := range cs {
		if c.p != nil {
			c.p.close(ctx)
		}
	}
	return out
}
