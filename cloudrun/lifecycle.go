package cloudrun

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/cloudlog"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/lro"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/naming"
	"github.com/googleapis/gax-go/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
)

// Create validates spec, maps it to a Cloud Run job and creates the job:
// the container is created, with no execution yet. Nothing is called for a
// spec that is invalid or that Cloud Run jobs cannot honour.
func (r *Runtime) Create(ctx context.Context, spec gantry.Spec) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "create", "")
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Name == "" {
		spec.Name = naming.NewName()
	}
	rec := meta.Record{ID: naming.NewID(spec.Name), Name: spec.Name, Created: time.Now().UTC(), Spec: spec}
	kind, err := r.kindOf(&spec)
	if err != nil {
		return nil, err
	}
	if kind == KindInstance {
		return r.createInstance(ctx, rec)
	}
	var plan *agentPlan
	if r.wantsAgent(&spec) {
		// Check first what needs no call: the spec against a plan that
		// stands in for the one the registry and the relay will give.
		if _, err := r.jobFor(rec, &agentPlan{cmd: []string{"true"}, relay: "https://relay.invalid"}); err != nil {
			return nil, err
		}
		if plan, err = r.planAgent(ctx, &spec); err != nil {
			return nil, err
		}
	}
	pb, err := r.jobFor(rec, plan)
	if err != nil {
		return nil, err
	}
	jobID := jobIDForName(spec.Name)
	req := &runpb.CreateJobRequest{Parent: r.parent, Job: pb, JobId: jobID}
	created, err := r.createJob(ctx, req, rec)
	if err != nil {
		return nil, err
	}
	r.log.Debug("created", zap.String("id", rec.ID), zap.String("name", rec.Name), zap.String("job", created.GetName()))
	return r.container(ctx, &job{pb: created, rec: rec})
}

// createJob creates the job and waits for its operation (see
// createOnce); a job an earlier attempt created is returned once Cloud
// Run has finished creating it.
func (r *Runtime) createJob(ctx context.Context, req *runpb.CreateJobRequest, rec meta.Record) (*runpb.Job, error) {
	j, existing, err := createOnce(ctx, rec, "job", req.JobId,
		func() (*runpb.Job, bool, error) {
			op, err := r.jobs.CreateJob(ctx, req)
			if err != nil {
				return nil, false, err
			}
			j, err := lro.Wait(ctx, op, r.cfg.PollInterval)
			return j, true, err
		},
		func() (*runpb.Job, error) {
			return r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: r.jobName(req.JobId)}, gcperr.Retry())
		})
	if err != nil || !existing {
		return j, err
	}
	return waitReconciled(ctx, r, j)
}

// createOnce makes a create call (create says whether Cloud Run took it:
// its error is then the operation's), retrying UNAVAILABLE. A create
// that meets ALREADY_EXISTS reads the resource with get: if it carries
// this container's ID label, an earlier attempt succeeded and it is
// returned as existing; otherwise the name is taken.
func createOnce[T resource](ctx context.Context, rec meta.Record, what, id string, create func() (T, bool, error), get func() (T, error)) (res T, existing bool, err error) {
	bo := gcperr.Backoff()
	for attempt := 1; ; attempt++ {
		res, accepted, err := create()
		switch {
		case err == nil:
			return res, false, nil
		case accepted:
			return res, false, gcperr.Wrap(ctx, err, "create %s %s", what, id)
		}
		switch gcperr.Code(err) {
		case codes.AlreadyExists:
			cur, gerr := get()
			if gerr == nil && meta.SameContainer(cur.GetLabels(), rec.ID) {
				return cur, true, nil
			}
			owner := "another container"
			if other, derr := meta.Decode(cur.GetLabels(), cur.GetAnnotations()); gerr == nil && derr == nil {
				owner = "container " + naming.ShortID(other.ID)
			}
			return res, false, gcperr.Wrap(ctx, err, "the name %q is in use by %s", rec.Name, owner)
		case codes.Unavailable:
			if attempt < gcperr.MaxAttempts {
				if serr := gax.Sleep(ctx, bo.Pause()); serr != nil {
					return res, false, serr
				}
				continue
			}
		}
		return res, false, gcperr.Wrap(ctx, err, "create %s %s", what, id)
	}
}

// waitReconciled returns a job found after a retried create once Cloud
// Run has finished creating it.
func waitReconciled(ctx context.Context, r *Runtime, j *runpb.Job) (*runpb.Job, error) {
	for j.GetReconciling() {
		if err := gax.Sleep(ctx, r.cfg.PollInterval); err != nil {
			return nil, err
		}
		var err error
		if j, err = r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.GetName()}, gcperr.Retry()); err != nil {
			return nil, gcperr.Wrap(ctx, err, "read job %s", j.GetName())
		}
	}
	return j, nil
}

// Start runs a new execution of the container's job. A running container
// is left alone.
func (r *Runtime) Start(ctx context.Context, id string) (err error) {
	defer gantry.WrapOp(&err, "cloudrun", "start", id)
	j, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if j.in != nil {
		return r.startInstance(ctx, j)
	}
	if j.running() {
		return nil
	}
	return r.runJob(ctx, j)
}

// runJob calls RunJob, which is not idempotent: after an UNAVAILABLE it
// reads the job, and only when the job shows no new execution (the failed
// attempt did not start one) does it try again. When the job cannot be
// read, whether the container started is unknown, and it says so instead
// of risking a second run.
func (r *Runtime) runJob(ctx context.Context, j *job) error {
	count, latest := j.pb.GetExecutionCount(), j.latest().GetName()
	bo := gcperr.Backoff()
	for attempt := 1; ; attempt++ {
		op, err := r.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: j.pb.GetName()})
		if err == nil {
			// The operation ends when the execution does; Wait follows
			// that through the poller instead. Its metadata names the
			// execution, which the job shows only once Cloud Run has
			// reconciled it.
			if ex, err := op.Metadata(); err == nil {
				r.recordStart(j.pb, ex)
			}
			return nil
		}
		if gcperr.Code(err) != codes.Unavailable || attempt >= gcperr.MaxAttempts {
			return gcperr.Wrap(ctx, err, "run job %s", j.pb.GetName())
		}
		cur, gerr := r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.pb.GetName()}, gcperr.Retry())
		switch {
		case gerr != nil:
			return gcperr.Wrap(ctx, err, "run job %s: whether the container started is unknown (the job could not be read after the attempt failed: %s)", j.pb.GetName(), gcperr.OneLine(gerr.Error()))
		case !meta.SameContainer(cur.GetLabels(), j.rec.ID):
			return fmt.Errorf("%w: the container was removed while it was being started", gantry.ErrNotFound)
		case cur.GetExecutionCount() > count || cur.GetLatestCreatedExecution().GetName() != latest:
			return nil
		}
		if serr := gax.Sleep(ctx, bo.Pause()); serr != nil {
			return serr
		}
	}
}

// checkStopSignal refuses a stop signal other than SIGTERM: cancelling an
// execution is the only way to stop it, and it sends SIGTERM.
func checkStopSignal(sig string) error {
	if sig == "" {
		return nil
	}
	n, err := gantry.ParseSignal(sig)
	if err != nil {
		return err
	}
	if n != 15 {
		return fmt.Errorf("signal %s: %w: Cloud Run can only cancel an execution, which sends SIGTERM (then SIGKILL after its grace period)", sig, gantry.ErrNotSupported)
	}
	return nil
}

// Stop stops the running execution and waits for it to end. Under the
// agent it is Docker's stop: the stop signal, the timeout, then SIGKILL
// (and a cancel when the agent cannot be reached). Without it, it cancels
// the execution: Cloud Run sends SIGTERM, then SIGKILL after its own grace
// period (10 seconds), which the timeout in opts cannot shorten or
// lengthen (see Capabilities).
func (r *Runtime) Stop(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, "cloudrun", "stop", id)
	if opts.Signal != "" {
		if _, err := gantry.ParseSignal(opts.Signal); err != nil {
			return err
		}
	}
	if opts.Timeout != nil && (*opts.Timeout > gantry.MaxDuration || *opts.Timeout < -gantry.MaxDuration) {
		return fmt.Errorf("%w: timeout %s is longer than a year", gantry.ErrInvalidArgument, *opts.Timeout)
	}
	if r.agent == nil {
		if err := checkStopSignal(opts.Signal); err != nil {
			return err
		}
	}
	j, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	sig := cmp.Or(opts.Signal, j.rec.Spec.StopSignal, "SIGTERM")
	timeout := gantry.DefaultStopTimeout
	if t := j.rec.Spec.StopTimeout; t != nil {
		timeout = *t
	}
	if opts.Timeout != nil {
		timeout = *opts.Timeout
	}
	if j.in != nil {
		if err := r.stopInstance(ctx, j, sig, timeout); err != nil && !errors.Is(err, errVanished) {
			return err
		}
		return nil
	}
	if !j.running() {
		return nil
	}
	if _, ok := hasAgent(j); ok && r.agent != nil {
		if err := r.stopWithAgent(ctx, j, sig, timeout); err != nil && !errors.Is(err, errVanished) {
			return err
		}
		return nil
	}
	if err := checkStopSignal(opts.Signal); err != nil {
		return err
	}
	l := j.latest()
	if err := r.cancel(ctx, j, l.GetName()); err != nil {
		return err
	}
	if _, err := r.waitExecution(ctx, j, l); err != nil && !errors.Is(err, errVanished) {
		return err
	}
	return nil
}

// cancel cancels an execution. One that has completed meanwhile (or is
// gone) needs no cancelling.
func (r *Runtime) cancel(ctx context.Context, j *job, exec string) error {
	name := r.execName(j.id(), exec)
	_, err := r.execs.CancelExecution(ctx, &runpb.CancelExecutionRequest{Name: name}, gcperr.Retry())
	switch gcperr.Code(err) {
	case codes.OK, codes.NotFound, codes.FailedPrecondition:
		return nil
	}
	return gcperr.Wrap(ctx, err, "cancel %s", name)
}

// Kill sends a signal (default SIGKILL) to the container's main process
// and returns without waiting. Under the agent any signal goes, as an
// init delivers it. Without the agent it cancels the running execution:
// SIGKILL and SIGTERM are accepted, and either way the process gets
// SIGTERM, then SIGKILL after Cloud Run's grace period; the exit status
// reports what ended it; other signals are ErrNotSupported. A container
// that is not running is ErrConflict.
func (r *Runtime) Kill(ctx context.Context, id string, signal string) (err error) {
	defer gantry.WrapOp(&err, "cloudrun", "kill", id)
	if signal == "" {
		signal = "SIGKILL"
	}
	n, err := gantry.ParseSignal(signal)
	if err != nil {
		return err
	}
	if r.agent == nil && n != 9 && n != 15 {
		return fmt.Errorf("signal %s: %w: %s", signal, gantry.ErrNotSupported, noteKill)
	}
	j, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if j.in != nil {
		return r.killInstance(ctx, j, signal)
	}
	if !j.running() {
		return fmt.Errorf("%w: the container is not running", gantry.ErrConflict)
	}
	if _, ok := hasAgent(j); ok && r.agent != nil {
		err := r.signalAgent(ctx, j, signal)
		if err == nil || (n != 9 && n != 15) || ctx.Err() != nil || errors.Is(err, gantry.ErrConflict) {
			return err
		}
		// SIGKILL and SIGTERM still end the run without the agent.
		r.log.Warn("kill: the agent could not be reached; cancelling the execution instead", zap.String("id", j.rec.ID), zap.Error(err))
		return r.cancel(ctx, j, j.latest().GetName())
	}
	if n != 9 && n != 15 {
		return fmt.Errorf("signal %s: %w: the container was created without the gantry agent; %s", signal, gantry.ErrNotSupported, noteKill)
	}
	return r.cancel(ctx, j, j.latest().GetName())
}

// Restart stops the container (see Stop) and runs a new execution of the
// same job; ID and name are kept.
func (r *Runtime) Restart(ctx context.Context, id string, opts gantry.StopOptions) (err error) {
	defer gantry.WrapOp(&err, "cloudrun", "restart", id)
	if err := r.Stop(ctx, id, opts); err != nil {
		return err
	}
	return r.Start(ctx, id)
}

// Remove deletes the container's job. A running container is ErrConflict
// unless opts.Force, which cancels its execution first.
func (r *Runtime) Remove(ctx context.Context, id string, opts gantry.RemoveOptions) (err error) {
	defer gantry.WrapOp(&err, "cloudrun", "remove", id)
	j, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if j.in != nil {
		return r.removeInstance(ctx, j, opts.Force)
	}
	if j.running() {
		if !opts.Force {
			return fmt.Errorf("%w: the container is running; stop it first or remove with Force", gantry.ErrConflict)
		}
		if err := r.cancel(ctx, j, j.latest().GetName()); err != nil {
			return err
		}
	}
	return r.deleteJob(ctx, j)
}

// deleteJob deletes the job. DeleteJob is not retried blindly: after an
// UNAVAILABLE it reads the job, and a job that is gone, or that now
// belongs to another container of the same name, means the failed
// attempt did delete this one; only this container's job is deleted
// again. Should Cloud Run refuse while a cancelled execution winds down,
// it waits for that and retries.
func (r *Runtime) deleteJob(ctx context.Context, j *job) error {
	waited := false
	bo := gcperr.Backoff()
	for attempt := 1; ; attempt++ {
		op, err := r.jobs.DeleteJob(ctx, &runpb.DeleteJobRequest{Name: j.pb.GetName()})
		if err == nil {
			_, err = lro.Wait(ctx, op, r.cfg.PollInterval)
		}
		switch {
		case err == nil, gcperr.Is(err, codes.NotFound):
			r.started.Delete(keyOf(j.pb))
			return nil
		case gcperr.Is(err, codes.FailedPrecondition) && !waited && j.latest() != nil:
			waited = true
			if _, werr := r.waitExecution(ctx, j, j.latest()); werr != nil && !errors.Is(werr, errVanished) {
				return werr
			}
			continue
		case gcperr.Is(err, codes.Unavailable) && attempt < gcperr.MaxAttempts:
			cur, gerr := r.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.pb.GetName()}, gcperr.Retry())
			switch {
			case gcperr.Is(gerr, codes.NotFound):
				return nil
			case gerr != nil:
				return gcperr.Wrap(ctx, err, "delete job %s: whether it was deleted is unknown (it could not be read after the attempt failed: %s)", j.pb.GetName(), gcperr.OneLine(gerr.Error()))
			case !meta.SameContainer(cur.GetLabels(), j.rec.ID):
				return nil
			}
			if serr := gax.Sleep(ctx, bo.Pause()); serr != nil {
				return serr
			}
			continue
		}
		return gcperr.Wrap(ctx, err, "delete job %s", j.pb.GetName())
	}
}

// Inspect returns the container's current description.
func (r *Runtime) Inspect(ctx context.Context, id string) (_ *gantry.Container, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "inspect", id)
	j, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.container(ctx, j)
}

// List returns the containers of the region that match opts, newest
// first: one ListJobs, plus one task read for each listed container whose
// last run did not succeed; and where the region has instances, one
// ListInstances, plus what Inspect reads for each instance.
func (r *Runtime) List(ctx context.Context, opts gantry.ListOptions) (_ []*gantry.Container, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "list", "")
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	all, err := r.listAll(ctx)
	if err != nil {
		return nil, err
	}
	jobs := make(map[*gantry.Container]*job, len(all))
	candidates := make([]*gantry.Container, 0, len(all))
	instances := map[*gantry.Container]*job{}
	for _, j := range all {
		c := r.describe(j)
		if j.in != nil {
			instances[c] = j
		} else {
			jobs[c] = j
		}
		candidates = append(candidates, c)
	}
	if len(instances) > 0 {
		// Whether an instance's container is created, running or
		// restarting only its agent knows: ask those that match the
		// rest of opts, before filtering by state.
		rest := opts
		rest.All, rest.Status, rest.Limit = true, nil, 0
		matched, err := gantry.SelectContainers(rest, candidates, nil)
		if err != nil {
			return nil, err
		}
		candidates = candidates[:0]
		for _, c := range matched {
			if j := instances[c]; j != nil {
				full, err := r.describeInstance(ctx, j)
				switch {
				case errors.Is(err, gantry.ErrNotFound), errors.Is(err, errVanished):
					continue // removed meanwhile
				case err != nil:
					return nil, err
				}
				c = full
			}
			candidates = append(candidates, c)
		}
	}
	return gantry.SelectContainers(opts, candidates, func(c *gantry.Container) (*gantry.Container, error) {
		if j := jobs[c]; j != nil {
			return c, r.completeState(ctx, c, j)
		}
		return c, nil
	})
}

// Logs reads the container's output from Cloud Logging: every execution of
// its job, in time order.
func (r *Runtime) Logs(ctx context.Context, id string, opts gantry.LogsOptions) (_ gantry.LogReader, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "logs", id)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	j, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.in != nil {
		return r.instanceLogs(ctx, id, j, opts)
	}
	var f cloudlog.Filter
	f.Eq("resource.type", "cloud_run_job").
		Eq("resource.labels.job_name", j.id()).
		Eq("resource.labels.location", r.cfg.Region)
	notBefore := timeOf(j.pb.GetCreateTime())
	if notBefore.IsZero() {
		notBefore = j.rec.Created
	}
	jobID := j.id()
	// With the agent, the reader learns from the runs' final records when
	// it has every line; last is the run whose record ends the reading.
	var last atomic.Pointer[string]
	name := lastSegment(j.latest().GetName())
	last.Store(&name)
	stoppedAt := r.stoppedAt(j)
	stopped := func(ctx context.Context) (time.Time, error) {
		at, run, err := stoppedAt(ctx)
		if run != "" {
			last.Store(&run)
		}
		return at, err
	}
	var runs *cloudlog.Runs
	if secret, ok := hasAgent(j); ok {
		// Runs before the last ended before it began: a grace period
		// after its start, their lines are all in.
		var settled time.Time
		if j.pb.GetExecutionCount() > 1 {
			began := timeOf(j.latest().GetCreateTime())
			if began.IsZero() {
				began = time.Now()
			}
			settled = began.Add(r.cfg.LogGrace)
		}
		runs = agentRuns(func() string { return *last.Load() }, settled, []byte(secret), j.rec.ID)
	}
	return cloudlog.Open(ctx, cloudlog.Source{
		Client:    r.logs,
		Project:   r.cfg.Project,
		Filter:    &f,
		StdoutLog: stdoutLog,
		StderrLog: stderrLog,
		NotBefore: notBefore,
		Stopped:   stopped,
		Runs:      runs,
		Ended:     timeOf(j.latest().GetCompletionTime()),
		Grace:     r.cfg.LogGrace,
		Settle:    r.cfg.PollInterval,
		Describe:  fmt.Sprintf("cloudrun: logs %q", id),
		Tail:      r.tail,
		Match: func(e *loggingpb.LogEntry) bool {
			return e.GetResource().GetLabels()["job_name"] == jobID
		},
	}, opts)
}
