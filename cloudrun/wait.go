package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/poll"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
)

// snapshot is what one poller tick learns: every gantry job of the
// region by job ID, each with the reference to its latest execution
// (name, creation and completion time, completion status).
type snapshot struct {
	jobs map[string]*runpb.Job
	// instances holds every gantry instance by ID, once the Runtime has
	// met one (ListInstances, one more read a tick).
	instances map[string]*runpb.Instance
}

// fetch is the poller's one read per tick: ListJobs. Cloud Run holds at
// most 1000 jobs in a project and region, one page of ListJobs, so the
// tick costs one call however many Waits are pending, however many
// executions the region's history holds and in whatever order Cloud Run
// lists them (the v2 API promises none): each Wait looks its job up by
// name. A failed read is not retried here: the poller backs off and tries
// again on a later tick.
func (r *Runtime) fetch(ctx context.Context) (snapshot, error) {
	s := snapshot{jobs: map[string]*runpb.Job{}, instances: map[string]*runpb.Instance{}}
	if r.instances != nil && r.sawInstances.Load() {
		it := r.instances.ListInstances(ctx, &runpb.ListInstancesRequest{Parent: r.parent, PageSize: r.pageSize})
		for {
			in, err := it.Next()
			if isDone(err) {
				break
			}
			if err != nil {
				r.log.Warn("poll failed; waiters keep waiting and the poller backs off", zap.Error(err))
				return snapshot{}, gcperr.Wrap(ctx, err, "poll instances")
			}
			if meta.Managed(in.GetLabels()) {
				s.instances[lastSegment(in.GetName())] = in
			}
		}
	}
	it := r.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: r.parent, PageSize: r.pageSize})
	for {
		j, err := it.Next()
		if isDone(err) {
			return s, nil
		}
		if err != nil {
			r.log.Warn("poll failed; waiters keep waiting and the poller backs off", zap.Error(err))
			return snapshot{}, gcperr.Wrap(ctx, err, "poll jobs")
		}
		if meta.Managed(j.GetLabels()) {
			s.jobs[lastSegment(j.GetName())] = j
		}
	}
}

// find returns the job of container j in s, or false when the job is
// gone (or now belongs to another container of the same name).
func (s snapshot) find(j *job) (*runpb.Job, bool) {
	pb, ok := s.jobs[j.id()]
	if !ok || pb.GetLabels()[meta.LabelID] != j.pb.GetLabels()[meta.LabelID] {
		return nil, false
	}
	return pb, true
}

// permanent reports whether a failed poll cannot succeed by waiting: the
// caller's identity, the request or the region is wrong.
func permanent(err error) bool {
	switch gcperr.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.NotFound,
		codes.FailedPrecondition, codes.Unimplemented, codes.OutOfRange:
		return true
	}
	return false
}

// watch runs check on every snapshot. A failed poll that waiting cannot
// mend (permission, a bad request) ends the watch with that error; any
// other is ridden out while the poller backs off, and is named in the
// error if ctx ends meanwhile, so a Wait never hangs silently.
func (r *Runtime) watch(ctx context.Context, check func(snapshot) (bool, error)) error {
	var last error
	err := r.poller.Watch(ctx, func(s snapshot, err error) (bool, error) {
		if err != nil {
			last = err
			if permanent(err) {
				return false, err
			}
			return false, nil
		}
		last = nil
		return check(s)
	})
	switch {
	case errors.Is(err, poll.ErrClosed):
		return gantry.ErrClosed
	case err != nil && last != nil && ctx.Err() != nil && err == ctx.Err():
		return &pollFailed{ctx: err, msg: fmt.Sprintf("%v; the last poll failed: %v", err, last)}
	}
	return err
}

// pollFailed is a context error met while the poller was failing: it says
// both, and errors.Is still finds the context error.
type pollFailed struct {
	ctx error
	msg string
}

func (e *pollFailed) Error() string { return e.msg }
func (e *pollFailed) Unwrap() error { return e.ctx }

// errVanished means an execution's job was deleted while it was awaited.
var errVanished = errors.New("execution no longer exists")

// waitExecution blocks until execution ref of job j has completed and
// returns its reference, completion time and status filled in. Each tick
// reads ref's job from the snapshot. While Cloud Run has not yet made ref
// the job's latest execution (it reconciles that asynchronously, with the
// job reconciling meanwhile), the Wait waits; when the job's latest is
// another execution and the job is settled, ref was overtaken and one
// GetExecution reads it.
func (r *Runtime) waitExecution(ctx context.Context, j *job, ref *runpb.ExecutionReference) (*runpb.ExecutionReference, error) {
	var done *runpb.ExecutionReference
	var vanished bool
	err := r.watch(ctx, func(s snapshot) (bool, error) {
		pb, ok := s.find(j)
		if !ok {
			vanished = true
			return true, nil
		}
		l := pb.GetLatestCreatedExecution()
		switch {
		case sameExecution(l.GetName(), ref.GetName()):
			if l.GetCompletionTime() != nil {
				done = l
				return true, nil
			}
			return false, nil
		case pb.GetReconciling() || l.GetName() == "":
			return false, nil
		}
		ex, err := r.execs.GetExecution(ctx, &runpb.GetExecutionRequest{Name: r.execName(j.id(), ref.GetName())}, gcperr.Retry())
		switch {
		case gcperr.Is(err, codes.NotFound):
			vanished = true
			return true, nil
		case err != nil && permanent(err):
			return false, gcperr.Wrap(ctx, err, "read execution %s", ref.GetName())
		case err == nil && ex.GetCompletionTime() != nil:
			done = referenceOf(ex)
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if vanished {
		return nil, errVanished
	}
	return done, nil
}

// referenceOf is the ExecutionReference a job would hold for ex.
func referenceOf(ex *runpb.Execution) *runpb.ExecutionReference {
	ref := &runpb.ExecutionReference{Name: ex.GetName(), CreateTime: ex.GetCreateTime(), CompletionTime: ex.GetCompletionTime()}
	switch {
	case ex.GetCompletionTime() == nil:
	case ex.GetCancelledCount() > 0:
		ref.CompletionStatus = runpb.ExecutionReference_EXECUTION_CANCELLED
	case ex.GetSucceededCount() > 0 && ex.GetFailedCount() == 0:
		ref.CompletionStatus = runpb.ExecutionReference_EXECUTION_SUCCEEDED
	default:
		ref.CompletionStatus = runpb.ExecutionReference_EXECUTION_FAILED
	}
	return ref
}

// Wait blocks until the container meets cond. Every pending Wait of the
// Runtime shares one poller.
func (r *Runtime) Wait(ctx context.Context, id string, cond gantry.WaitCondition) (_ gantry.ExitStatus, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "wait", id)
	wait, err := r.registerWait(ctx, id, cond)
	if err != nil {
		return gantry.ExitStatus{}, err
	}
	return wait(ctx)
}

// RegisterWait registers a wait as Wait does and returns once it is in
// place (see gantry.WaitRegisterer): the container's job has been read,
// and what the wait looks for is fixed against it, so a run started
// afterwards is the next exit, and a removal afterwards is seen.
func (r *Runtime) RegisterWait(ctx context.Context, id string, cond gantry.WaitCondition) (_ <-chan gantry.WaitResult, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "wait", id)
	wait, err := r.registerWait(ctx, id, cond)
	if err != nil {
		return nil, err
	}
	ch := make(chan gantry.WaitResult, 1)
	go func() {
		var res gantry.WaitResult
		res.Status, res.Err = wait(ctx)
		gantry.WrapOp(&res.Err, "cloudrun", "wait", id)
		ch <- res
		close(ch)
	}()
	return ch, nil
}

// registerWait reads the container's job and returns the wait for cond
// against what it shows.
func (r *Runtime) registerWait(ctx context.Context, id string, cond gantry.WaitCondition) (func(context.Context) (gantry.ExitStatus, error), error) {
	if err := cond.Validate(); err != nil {
		return nil, err
	}
	j, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.in != nil {
		return r.registerInstanceWait(ctx, j, cond)
	}
	switch cond {
	case gantry.WaitNextExit:
		// A removal ends the wait with the last run's status, which is
		// read now, while the job (and its tasks) still exist.
		var last gantry.ExitStatus
		if l := j.latest(); l != nil && l.GetCompletionTime() != nil {
			if last, err = r.waitNotRunning(ctx, j); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context) (gantry.ExitStatus, error) { return r.waitNextExit(ctx, j, last) }, nil
	case gantry.WaitRemoved:
		return func(ctx context.Context) (gantry.ExitStatus, error) { return r.waitRemoved(ctx, j) }, nil
	}
	return func(ctx context.Context) (gantry.ExitStatus, error) {
		st, err := r.waitNotRunning(ctx, j)
		if errors.Is(err, errVanished) {
			return st, fmt.Errorf("%w: the container was removed while it ran", gantry.ErrNotFound)
		}
		return st, err
	}, nil
}

// waitNotRunning returns the status of the latest run once it is over
// (at once if it is), or zero for a container that never ran.
func (r *Runtime) waitNotRunning(ctx context.Context, j *job) (gantry.ExitStatus, error) {
	l := j.latest()
	if l == nil {
		return gantry.ExitStatus{}, nil
	}
	if l.GetCompletionTime() == nil {
		var err error
		if l, err = r.waitExecution(ctx, j, l); err != nil {
			return gantry.ExitStatus{}, err
		}
	}
	return r.refStatus(ctx, j.id(), l)
}

// waitNextExit waits for the running execution, or for the first one
// created after the call, to complete. When the job is removed first, it
// returns last, the status of the run before the call, as moby wakes a
// next-exit wait at removal.
func (r *Runtime) waitNextExit(ctx context.Context, j *job, last gantry.ExitStatus) (gantry.ExitStatus, error) {
	if j.running() {
		st, err := r.waitNotRunning(ctx, j)
		if errors.Is(err, errVanished) {
			err = fmt.Errorf("%w: the container was removed while it ran", gantry.ErrNotFound)
		}
		return st, err
	}
	baseline, count := j.latest().GetName(), j.pb.GetExecutionCount()
	var done *runpb.ExecutionReference
	removed := false
	err := r.watch(ctx, func(s snapshot) (bool, error) {
		pb, ok := s.find(j)
		if !ok {
			removed = true
			return true, nil
		}
		l := pb.GetLatestCreatedExecution()
		switch {
		case l.GetName() == "" || sameExecution(l.GetName(), baseline):
			return false, nil
		case pb.GetExecutionCount() <= count+1:
			// The first run after the call is the job's latest.
			if l.GetCompletionTime() != nil {
				done = l
				return true, nil
			}
			return false, nil
		}
		// More than one run began since the call: the first of them to
		// complete is the next exit, whatever the latest is doing.
		first, err := r.firstCompletedAfter(ctx, j, baseline)
		if err != nil {
			return false, err
		}
		done = first
		return first != nil, nil
	})
	switch {
	case err != nil:
		return gantry.ExitStatus{}, err
	case removed:
		return last, nil
	}
	return r.refStatus(ctx, j.id(), done)
}

// firstCompletedAfter returns the earliest-created completed execution of
// j created after the execution named baseline (all of them when it is
// empty), or nil. It lists the job's executions, in whatever order Cloud
// Run gives them.
func (r *Runtime) firstCompletedAfter(ctx context.Context, j *job, baseline string) (*runpb.ExecutionReference, error) {
	var all []*runpb.Execution
	var after time.Time
	it := r.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: j.pb.GetName(), PageSize: r.pageSize}, gcperr.Retry())
	for {
		ex, err := it.Next()
		if isDone(err) {
			break
		}
		if err != nil {
			if permanent(err) {
				return nil, gcperr.Wrap(ctx, err, "list executions of %s", j.pb.GetName())
			}
			return nil, nil
		}
		if sameExecution(ex.GetName(), baseline) {
			after = timeOf(ex.GetCreateTime())
		}
		all = append(all, ex)
	}
	var first *runpb.Execution
	for _, ex := range all {
		created := timeOf(ex.GetCreateTime())
		if sameExecution(ex.GetName(), baseline) || !created.After(after) || ex.GetCompletionTime() == nil {
			continue
		}
		if first == nil || created.Before(timeOf(first.GetCreateTime())) {
			first = ex
		}
	}
	if first == nil {
		return nil, nil
	}
	return referenceOf(first), nil
}

// waitRemoved returns once the container's job is gone, with the status
// of its last run.
func (r *Runtime) waitRemoved(ctx context.Context, j *job) (gantry.ExitStatus, error) {
	var st gantry.ExitStatus
	if j.latest() != nil {
		var err error
		st, err = r.waitNotRunning(ctx, j)
		switch {
		case errors.Is(err, errVanished):
			return gantry.ExitStatus{ExitCode: 128 + 9, Signal: "SIGKILL", Error: "removed while running"}, nil
		case errors.Is(err, errRemovedFirst):
			// The removal this Wait waits for came before the exit status
			// could be read: it is gone with the job.
			return gantry.ExitStatus{ExitCode: 128 + 9, Signal: "SIGKILL", Error: "removed before its exit status could be read"}, nil
		case err != nil:
			return st, err
		}
	}
	err := r.watch(ctx, func(s snapshot) (bool, error) {
		_, ok := s.find(j)
		return !ok, nil
	})
	return st, err
}

// stoppedAt blocks until the container is not running and returns when
// its last run finished (zero if it never ran) and that run's execution
// ID: Logs' end of following.
func (r *Runtime) stoppedAt(j *job) func(context.Context) (time.Time, string, error) {
	return func(ctx context.Context) (time.Time, string, error) {
		l := j.latest()
		switch {
		case l == nil:
			return time.Time{}, "", nil
		case l.GetCompletionTime() != nil:
			return timeOf(l.GetCompletionTime()), lastSegment(l.GetName()), nil
		}
		done, err := r.waitExecution(ctx, j, l)
		if errors.Is(err, errVanished) {
			return time.Now(), lastSegment(l.GetName()), nil
		}
		if err != nil {
			return time.Time{}, "", err
		}
		return timeOf(done.GetCompletionTime()), lastSegment(done.GetName()), nil
	}
}
