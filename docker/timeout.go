package docker

import (
	"context"
	"time"

	"github.com/moby/moby/client"
	"go.uber.org/zap"
)

// runTimer bounds one run of a container (Spec.Timeout), which Docker
// cannot do: when it fires, the run it was armed for is stopped as Stop
// would, if it still runs.
type runTimer struct {
	t *time.Timer
}

func (t *runTimer) stop() { t.t.Stop() }

// armTimeout starts the timer of the run just started in container id, if
// its spec has a Timeout. The run is told apart from a later one by its
// StartedAt, so a timer never stops a run it was not armed for. A failure
// here is logged, not returned: the start itself succeeded.
func (r *Runtime) armTimeout(ctx context.Context, id string) {
	c, err := r.resolve(ctx, id)
	if err != nil {
		r.log.Debug("timeout not armed", zap.String("id", id), zap.Error(err))
		return
	}
	rec, err := decodeRecord(c.Config.Labels)
	if err != nil || rec.Timeout <= 0 || !c.State.Running {
		return
	}
	started := c.State.StartedAt
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base.Err() != nil {
		return
	}
	if old := r.timeouts[c.ID]; old != nil {
		old.stop()
	}
	t := &runTimer{}
	t.t = time.AfterFunc(rec.Timeout, func() { r.expire(t, c.ID, started) })
	r.timeouts[c.ID] = t
}

// expire stops container id if the run that started at started still runs.
// It runs on t's goroutine, under the Runtime's base context, so a Close
// ends it.
func (r *Runtime) expire(t *runTimer, id, started string) {
	r.mu.Lock()
	if r.timeouts[id] == t {
		delete(r.timeouts, id)
	}
	r.mu.Unlock()
	ctx := r.base
	res, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil {
		return
	}
	if s := res.Container.State; !s.Running || s.StartedAt != started {
		return
	}
	r.log.Debug("run timed out; stopping", zap.String("id", id))
	if _, err := r.cli.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
		r.log.Debug("stop after timeout", zap.String("id", id), zap.Error(err))
	}
}

// disarmTimeout drops the timer of container id, if any.
func (r *Runtime) disarmTimeout(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.timeouts[id]; t != nil {
		t.stop()
		delete(r.timeouts, id)
	}
}
