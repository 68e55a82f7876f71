package fake

import (
	"time"

	"github.com/gantryhq/gantry"
)

// DefaultRestartDelay is the fake's first delay before a restart policy's
// restart: Docker's (100 ms) divided by ten, so that tests of restart
// policies run fast. See WithRestartDelay.
const DefaultRestartDelay = 10 * time.Millisecond

// WithRestartDelay sets the delay before a restart policy's first restart,
// from which the fake derives the others as Docker's daemon does from its
// 100 ms: each restart doubles the delay, up to 600 times the first
// (Docker's minute), and a run that lasted 100 times the first delay or
// more (Docker's 10 s) sets it back to the first. Give 100*time.Millisecond
// for Docker's own delays; the default is DefaultRestartDelay.
func WithRestartDelay(d time.Duration) Option {
	return func(rt *Runtime) {
		if d > 0 {
			rt.restartDelay = d
		}
	}
}

// pendingRestart is a restart a restart policy has scheduled; closing
// cancel calls it off.
type pendingRestart struct {
	cancel chan struct{}
}

// restartDue reports whether c, whose run just ended with st, is to be
// restarted, by Docker's rules: never after Stop, Kill or a timeout, nor
// once the container is being removed or the Runtime closed; on-failure
// after a non-zero exit while RestartCount is below a positive MaxRetries;
// always and unless-stopped after every exit. Call with rt.mu held.
func (rt *Runtime) restartDue(c *container, st gantry.ExitStatus) bool {
	if rt.closed || c.removing || c.manualStop {
		return false
	}
	p := c.spec.RestartPolicy
	switch p.Name {
	case gantry.RestartAlways, gantry.RestartUnlessStopped:
		return true
	case gantry.RestartOnFailure:
		return st.ExitCode != 0 && (p.MaxRetries == 0 || c.restartCount < p.MaxRetries)
	}
	return false
}

// scheduleRestart puts c, whose run lasted ran, in Docker's restarting
// state (status restarting, still running, RestartCount counting this
// restart) and starts it again after the delay. Call with rt.mu held,
// while the Runtime is open.
func (rt *Runtime) scheduleRestart(c *container, ran time.Duration) {
	first := rt.restartDelay
	switch {
	case ran >= 100*first || c.backoff == 0:
		c.backoff = first
	default:
		c.backoff = min(2*c.backoff, 600*first)
	}
	c.restartCount++
	c.state.Status = gantry.StatusRestarting
	c.state.Running = true
	p := &pendingRestart{cancel: make(chan struct{})}
	c.pending = p
	rt.wg.Add(1)
	go rt.restartAfter(c, p, c.backoff)
}

func (rt *Runtime) restartAfter(c *container, p *pendingRestart, d time.Duration) {
	defer rt.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.cancel:
		return
	case <-rt.done:
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if c.pending != p || rt.closed || c.removed {
		return
	}
	c.pending = nil
	if err := rt.run(c); err != nil {
		// As Docker's, a restart that cannot start leaves the container
		// exited, with the reason.
		c.state.Status = gantry.StatusExited
		c.state.Running = false
		c.state.Error = err.Error()
	}
}

// cancelRestart calls off c's pending restart, if any, leaving it exited
// with its last exit code, as Stop and Kill of a restarting container do
// in Docker, whose waits then return with that code. It reports whether
// there was one. Call with rt.mu held.
func cancelRestart(c *container) bool {
	p := c.pending
	if p == nil {
		return false
	}
	close(p.cancel)
	c.pending = nil
	c.state.Status = gantry.StatusExited
	if c.removing {
		c.state.Status = gantry.StatusRemoving
	}
	c.state.Running = false
	if w := c.exitWait; w != nil {
		w.status = c.exitStatus()
		close(w.ch)
		c.exitWait = nil
	}
	return true
}
