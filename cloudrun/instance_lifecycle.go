package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/lro"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/googleapis/gax-go/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
)

// createInstance creates the instance of a container of kind instance.
// Cloud Run starts an instance as it creates it; the agent holds the
// command until Start (the gate), so the container is created, not
// running. An instance that does not get ready is deleted again, and
// the error says why.
func (r *Runtime) createInstance(ctx context.Context, rec meta.Record) (*gantry.Container, error) {
	spec := &rec.Spec
	stand := &agentPlan{cmd: []string{"true"}, relay: "https://relay.invalid", port: minReadyPort, ingress: minReadyPort + 1}
	if _, err := r.instanceFor(rec, stand); err != nil {
		return nil, err
	}
	id := jobIDForName(spec.Name)
	// A job of the same name would be the same container name.
	if _, err := r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: r.jobName(id)}, gcperr.Retry()); err == nil {
		return nil, fmt.Errorf("%w: the name %q is in use by a container that runs as a job", gantry.ErrConflict, spec.Name)
	} else if !gcperr.Is(err, codes.NotFound) {
		return nil, gcperr.Wrap(ctx, err, "read job %s", r.jobName(id))
	}
	plan, err := r.planAgent(ctx, spec)
	if err != nil {
		return nil, err
	}
	if plan.ingress, err = ingressPort(plan.port); err != nil {
		return nil, err
	}
	pb, err := r.instanceFor(rec, plan)
	if err != nil {
		return nil, err
	}
	r.sawInstances.Store(true)
	req := &runpb.CreateInstanceRequest{Parent: r.parent, Instance: pb, InstanceId: id}
	created, _, err := createOnce(ctx, rec, "instance", id,
		func() (*runpb.Instance, bool, error) {
			op, err := r.instances.CreateInstance(ctx, req)
			if err != nil {
				return nil, false, err
			}
			in, err := lro.Wait(ctx, op, r.cfg.PollInterval)
			if err != nil {
				// The instance exists but did not get ready: remove it,
				// so that nothing is left half-made.
				r.deleteInstanceQuietly(ctx, r.instanceName(id), rec.ID)
			}
			return in, true, err
		},
		func() (*runpb.Instance, error) {
			return r.instances.GetInstance(ctx, &runpb.GetInstanceRequest{Name: r.instanceName(id)}, gcperr.Retry())
		})
	if err != nil {
		return nil, err
	}
	r.log.Debug("created", zap.String("id", rec.ID), zap.String("name", rec.Name), zap.String("instance", created.GetName()))
	// The agent holds the command until Start: the container is created.
	c := r.describe(&job{in: created, rec: rec})
	c.State = gantry.State{Status: gantry.StatusCreated}
	return c, nil
}

// deleteInstanceQuietly deletes an instance a failed create left, if it
// is still this container's, logging what it could not do.
func (r *Runtime) deleteInstanceQuietly(ctx context.Context, name, id string) {
	ctx = context.WithoutCancel(ctx)
	cur, err := r.instances.GetInstance(ctx, &runpb.GetInstanceRequest{Name: name}, gcperr.Retry())
	if err != nil || !meta.SameContainer(cur.GetLabels(), id) {
		return
	}
	if err := r.deleteInstance(ctx, &job{in: cur}); err != nil {
		r.log.Warn("could not delete the instance of a failed create", zap.String("instance", name), zap.Error(err))
	}
}

// instanceAgent connects to the agent of an instance whose containers
// run.
func (r *Runtime) instanceAgent(ctx context.Context, j *job) (*agent.Client, error) {
	if !instanceUp(j.in) || instanceStopping(j.in) {
		return nil, fmt.Errorf("%w: the container is not running", gantry.ErrConflict)
	}
	return r.agentClient(ctx, j)
}

// errAgentGone is agentStatus's answer when Cloud Run says the instance
// runs but its agent has gone: it exits with the main process, so the
// command has ended and the instance is about to stop.
var errAgentGone = errors.New("the agent has exited")

// agentStatus asks a running instance's agent how its main process is.
// An instance that is not running is ErrConflict; one whose agent cannot
// be reached (or whose connection ends) is errAgentGone.
func (r *Runtime) agentStatus(ctx context.Context, j *job) (agent.Status, error) {
	cl, err := r.instanceAgent(ctx, j)
	if err == nil {
		var st agent.Status
		if st, err = cl.Status(ctx); err == nil {
			return st, nil
		}
	}
	if errors.Is(err, gantry.ErrUnavailable) && ctx.Err() == nil {
		return agent.Status{}, fmt.Errorf("%w: %w", errAgentGone, err)
	}
	return agent.Status{}, err
}

// runningAgentOf connects to the agent of a running container, for exec,
// attach and port forwarding: a created or exited one is ErrConflict, as
// Docker's.
func (r *Runtime) runningAgentOf(ctx context.Context, j *job) (*agent.Client, error) {
	st, err := r.agentStatus(ctx, j)
	switch {
	case errors.Is(err, errAgentGone):
		return nil, fmt.Errorf("%w: the container is not running (its command has exited)", gantry.ErrConflict)
	case err != nil:
		return nil, err
	case st.State != agent.StateRunning:
		return nil, fmt.Errorf("%w: the container is %s, not running", gantry.ErrConflict, st.State)
	}
	return r.instanceAgent(ctx, j)
}

// stopSettle bounds how long Inspect waits for Cloud Run to stop an
// instance whose agent has exited.
const stopSettle = 30 * time.Second

// startInstance starts the container: the agent of a created container
// runs the command; a stopped instance is started first (Cloud Run runs
// its containers again, with the same name and URL). A running container
// is left alone; one whose command has just ended is started again once
// its instance has stopped.
func (r *Runtime) startInstance(ctx context.Context, j *job) error {
	if instanceUp(j.in) && !instanceStopping(j.in) {
		st, err := r.agentStatus(ctx, j)
		switch {
		case err == nil && st.State == agent.StateCreated:
			return r.startMain(ctx, j)
		case err == nil && st.State != agent.StateExited:
			return nil
		case err != nil && !errors.Is(err, errAgentGone):
			return err
		}
	}
	if instanceUp(j.in) {
		pb, err := r.waitInstanceStopped(ctx, j)
		if errors.Is(err, errVanished) {
			return fmt.Errorf("%w: the container was removed while it was being started", gantry.ErrNotFound)
		}
		if err != nil {
			return err
		}
		j = &job{in: pb, rec: j.rec}
	}
	// Docker keeps the last run's FinishedAt while the container runs
	// again: remember it from the record.
	last, err := r.exitRecord(ctx, j)
	if err != nil {
		return err
	}
	r.restarted.Store(restartKey{j.in.GetName(), j.rec.ID}, last.state.FinishedAt)
	op, err := r.instances.StartInstance(ctx, &runpb.StartInstanceRequest{Name: j.in.GetName()}, gcperr.Retry())
	if err != nil {
		return gcperr.Wrap(ctx, err, "start instance %s", j.in.GetName())
	}
	in, err := lro.Wait(ctx, op, r.cfg.PollInterval)
	if err != nil {
		return gcperr.Wrap(ctx, err, "start instance %s", j.in.GetName())
	}
	return r.startMain(ctx, &job{in: in, rec: j.rec})
}

// startMain has the agent of a running instance run the command. A
// command that cannot run is the container's exit (127 or 126, as an
// init reports it), not Start's error, as with Docker.
func (r *Runtime) startMain(ctx context.Context, j *job) error {
	cl, err := r.instanceAgent(ctx, j)
	if err != nil {
		return err
	}
	err = cl.StartMain(ctx)
	switch {
	case err == nil, errors.Is(err, gantry.ErrNotFound), errors.Is(err, gantry.ErrPermissionDenied):
		return nil
	case errors.Is(err, gantry.ErrUnavailable) && ctx.Err() == nil:
		// The connection ended: the agent may have started a command
		// that ended at once, and exited with it before answering.
		st, serr := r.agentStatus(ctx, j)
		if errors.Is(serr, errAgentGone) || (serr == nil && st.State != agent.StateCreated) {
			return nil
		}
	}
	return err
}

// stopInstance stops the container as Docker does, through the agent:
// the stop signal, up to timeout for the main process to exit (negative:
// for ever), then SIGKILL. The agent restarts nothing a signal ended,
// and exits with the main process; Cloud Run then stops the instance
// (its restart policy is NEVER). A created container is left as it is,
// as Docker leaves one. When the agent cannot be reached, or the
// container waits for its restart, Cloud Run stops the instance
// (SIGTERM to the agent, which passes it on, then SIGKILL after Cloud
// Run's grace).
func (r *Runtime) stopInstance(ctx context.Context, j *job, sig string, timeout time.Duration) error {
	if !instanceUp(j.in) {
		return nil
	}
	if instanceStopping(j.in) {
		_, err := r.waitInstanceStopped(ctx, j)
		return err
	}
	st, err := r.agentStatus(ctx, j)
	switch {
	case err == nil && st.State == agent.StateCreated:
		return nil
	case err == nil && st.State == agent.StateRunning:
		err = r.signalInstance(ctx, j, sig)
	case err == nil && st.State == agent.StateExited, errors.Is(err, errAgentGone):
		err = gantry.ErrConflict
	case err == nil:
		err = errors.New("the main process waits for its restart")
	}
	switch {
	case err == nil:
	case errors.Is(err, gantry.ErrConflict):
		_, err := r.waitInstanceStopped(ctx, j)
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		r.log.Debug("stop: stopping the instance", zap.String("id", j.rec.ID), zap.Error(err))
		return r.stopInstanceNow(ctx, j)
	}
	wctx, cancel := context.WithCancel(ctx)
	if timeout >= 0 {
		wctx, cancel = context.WithTimeout(ctx, timeout)
	}
	_, err = r.waitInstanceStopped(wctx, j)
	cancel()
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if err := r.signalInstance(ctx, j, "SIGKILL"); err != nil && !errors.Is(err, gantry.ErrConflict) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.stopInstanceNow(ctx, j)
	}
	_, err = r.waitInstanceStopped(ctx, j)
	return err
}

// signalInstance sends sig to the main process through the agent.
func (r *Runtime) signalInstance(ctx context.Context, j *job, sig string) error {
	cl, err := r.instanceAgent(ctx, j)
	if err != nil {
		return err
	}
	return cl.Signal(ctx, sig)
}

// stopInstanceNow has Cloud Run stop the instance and waits until it
// has.
func (r *Runtime) stopInstanceNow(ctx context.Context, j *job) error {
	op, err := r.instances.StopInstance(ctx, &runpb.StopInstanceRequest{Name: j.in.GetName()}, gcperr.Retry())
	if err == nil {
		_, err = lro.Wait(ctx, op, r.cfg.PollInterval)
	}
	switch {
	case err == nil, gcperr.Is(err, codes.NotFound):
		return nil
	case gcperr.Is(err, codes.Aborted):
		// Another change came first; the wait below sees where it led.
	default:
		return gcperr.Wrap(ctx, err, "stop instance %s", j.in.GetName())
	}
	_, err = r.waitInstanceStopped(ctx, j)
	return err
}

// killInstance sends signal to the main process through the agent, as
// docker kill does (and, as there, the restart policy restarts nothing
// the signal ends). A container that is not running is ErrConflict.
func (r *Runtime) killInstance(ctx context.Context, j *job, signal string) error {
	st, err := r.agentStatus(ctx, j)
	switch {
	case errors.Is(err, errAgentGone):
		return fmt.Errorf("%w: the container is not running (its command has exited)", gantry.ErrConflict)
	case err != nil:
		return err
	case st.State != agent.StateRunning:
		return fmt.Errorf("%w: the container is %s, not running", gantry.ErrConflict, st.State)
	}
	return r.signalInstance(ctx, j, signal)
}

// removeInstance deletes the container's instance. A running container
// is ErrConflict unless force, which deletes it all the same (Cloud Run
// stops its containers).
func (r *Runtime) removeInstance(ctx context.Context, j *job, force bool) error {
	if instanceUp(j.in) {
		st, err := r.agentStatus(ctx, j)
		running := err == nil && (st.State == agent.StateRunning || st.State == agent.StateRestarting)
		switch {
		case err != nil && !errors.Is(err, gantry.ErrConflict) && !errors.Is(err, errAgentGone):
			return err
		case running && !force:
			return fmt.Errorf("%w: the container is running; stop it first or remove with Force", gantry.ErrConflict)
		case running:
			// Docker kills it first: its exit, 137, is what a wait sees.
			if err := r.stopInstance(ctx, j, "SIGKILL", 0); err != nil && !errors.Is(err, errVanished) {
				return err
			}
		}
	}
	return r.deleteInstance(ctx, j)
}

// deleteInstance deletes the instance and waits until Cloud Run has. A
// retry after UNAVAILABLE reads it first, as deleteJob does.
func (r *Runtime) deleteInstance(ctx context.Context, j *job) error {
	bo := gcperr.Backoff()
	for attempt := 1; ; attempt++ {
		op, err := r.instances.DeleteInstance(ctx, &runpb.DeleteInstanceRequest{Name: j.in.GetName()})
		if err == nil {
			_, err = lro.Wait(ctx, op, r.cfg.PollInterval)
		}
		switch {
		case err == nil, gcperr.Is(err, codes.NotFound):
			r.restarted.Delete(restartKey{j.in.GetName(), j.rec.ID})
			return nil
		case gcperr.Is(err, codes.Unavailable) && attempt < gcperr.MaxAttempts:
			cur, gerr := r.instances.GetInstance(ctx, &runpb.GetInstanceRequest{Name: j.in.GetName()}, gcperr.Retry())
			switch {
			case gcperr.Is(gerr, codes.NotFound):
				return nil
			case gerr != nil:
				return gcperr.Wrap(ctx, err, "delete instance %s: whether it was deleted is unknown (it could not be read after the attempt failed: %s)", j.in.GetName(), gcperr.OneLine(gerr.Error()))
			case j.rec.ID != "" && !meta.SameContainer(cur.GetLabels(), j.rec.ID):
				return nil
			}
			if serr := gax.Sleep(ctx, bo.Pause()); serr != nil {
				return serr
			}
			continue
		}
		return gcperr.Wrap(ctx, err, "delete instance %s", j.in.GetName())
	}
}

// describeInstance builds the Container an instance describes, asking
// its agent how the main process is while the instance runs, and
// reading the agent's exit record once it has stopped.
func (r *Runtime) describeInstance(ctx context.Context, j *job) (*gantry.Container, error) {
	rec := j.rec
	c := r.describe(j)
	c.State = gantry.State{Status: gantry.StatusCreated}
	if !instanceUp(j.in) {
		ex, err := r.exitRecord(ctx, j)
		if err != nil {
			return nil, err
		}
		if ex.never {
			return c, nil
		}
		c.State = ex.state
		c.RestartCount = ex.restarts
		return c, nil
	}
	st, err := r.agentStatus(ctx, j)
	switch {
	case errors.Is(err, errAgentGone), errors.Is(err, gantry.ErrConflict):
		// The agent has gone with the main process, and Cloud Run is
		// stopping the instance: its exit record tells the rest.
		wctx, cancel := context.WithTimeout(ctx, stopSettle)
		pb, werr := r.waitInstanceStopped(wctx, j)
		cancel()
		switch {
		case werr == nil:
			return r.describeInstance(ctx, &job{in: pb, rec: j.rec})
		case errors.Is(werr, errVanished):
			return nil, fmt.Errorf("%w: no such container: %s", gantry.ErrNotFound, rec.ID)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		r.log.Warn("inspect: the agent of a running instance cannot be reached", zap.String("id", rec.ID), zap.Error(err))
		c.State.Status, c.State.Running = gantry.StatusRunning, true
		return c, nil
	case err != nil:
		return nil, err
	}
	if st.FinishedAt.IsZero() {
		// A new start of the instance: the run before it ended as its
		// record says, and Docker keeps that FinishedAt until the next
		// exit.
		if st.FinishedAt, err = r.previousInstanceFinish(ctx, j, st.StartedAt); err != nil {
			return nil, err
		}
	}
	c.RestartCount = st.RestartCount
	c.State.StartedAt, c.State.FinishedAt = st.StartedAt, st.FinishedAt
	c.State.ExitCode, c.State.Signal = st.ExitCode, st.Signal
	c.State.Health = st.Health
	switch st.State {
	case agent.StateCreated:
		c.State = gantry.State{Status: gantry.StatusCreated, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, ExitCode: st.ExitCode, Signal: st.Signal}
	case agent.StateRunning:
		c.State.Status, c.State.Running = gantry.StatusRunning, true
	case agent.StateRestarting:
		c.State.Status, c.State.Running = gantry.StatusRestarting, true
	default:
		c.State.Status = gantry.StatusExited
	}
	return c, nil
}
