package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/poll"
	"google.golang.org/grpc/codes"
)

// snapshot is what one poller tick learns: every execution of gantry's
// jobs in the region, by job ID, newest first; and, while a Wait for
// removal is pending, the ID label of every gantry job.
type snapshot struct {
	execs map[string][]*runpb.Execution
	jobs  map[string]string
}

// fetch is the poller's one read per tick: ListExecutions over the "-"
// wildcard (all jobs), plus ListJobs only while someone waits for a
// removal. Its cost does not depend on how many Waits are pending.
func (r *Runtime) fetch(ctx context.Context) (snapshot, error) {
	s := snapshot{execs: map[string][]*runpb.Execution{}}
	it := r.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: r.jobName("-"), PageSize: 1000}, gcperr.Retry())
	for {
		ex, err := it.Next()
		if isDone(err) {
			break
		}
		if err != nil {
			return snapshot{}, gcperr.Wrap(ctx, err, "cloudrun: poll executions")
		}
		jobID := lastSegment(ex.GetJob())
		if !strings.HasPrefix(jobID, jobPrefix) {
			continue
		}
		s.execs[jobID] = append(s.execs[jobID], ex)
	}
	for _, list := range s.execs {
		slices.SortFunc(list, func(a, b *runpb.Execution) int {
			return b.GetCreateTime().AsTime().Compare(a.GetCreateTime().AsTime())
		})
	}
	if r.removedWaiters.get() > 0 {
		s.jobs = map[string]string{}
		it := r.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: r.parent, PageSize: 1000}, gcperr.Retry())
		for {
			j, err := it.Next()
			if isDone(err) {
				break
			}
			if err != nil {
				return snapshot{}, gcperr.Wrap(ctx, err, "cloudrun: poll jobs")
			}
			if meta.Managed(j.GetLabels()) {
				s.jobs[lastSegment(j.GetName())] = j.GetLabels()[meta.LabelID]
			}
		}
	}
	return s, nil
}

// watch runs check on every snapshot, riding out failed ticks (the poller
// retries UNAVAILABLE itself; anything else is reported once the context
// ends, so a Wait never hangs silently).
func (r *Runtime) watch(ctx context.Context, what string, check func(snapshot) (bool, error)) error {
	var last error
	err := r.poller.Watch(ctx, func(s snapshot, err error) (bool, error) {
		if err != nil {
			last = err
			if gcperr.Code(err) == codes.PermissionDenied || gcperr.Code(err) == codes.Unauthenticated {
				return false, err
			}
			return false, nil
		}
		last = nil
		return check(s)
	})
	switch {
	case errors.Is(err, poll.ErrClosed):
		return fmt.Errorf("cloudrun: %s: the Runtime was closed", what)
	case err != nil && last != nil && ctx.Err() != nil:
		return fmt.Errorf("%w (last poll failed: %v)", ctx.Err(), last)
	}
	return err
}

// errVanished means an execution left the listing: its job was deleted.
var errVanished = errors.New("execution no longer exists")

// waitExecution blocks until execution exec of jobID has completed and
// returns it.
func (r *Runtime) waitExecution(ctx context.Context, jobID, exec string) (*runpb.Execution, error) {
	exec = lastSegment(exec)
	var done *runpb.Execution
	var vanished bool
	err := r.watch(ctx, "wait", func(s snapshot) (bool, error) {
		for _, ex := range s.execs[jobID] {
			if lastSegment(ex.GetName()) == exec {
				if ex.GetCompletionTime() != nil {
					done = ex
					return true, nil
				}
				return false, nil
			}
		}
		// Not listed: confirm with one read before believing it gone
		// (a listing may lag behind a brand-new execution).
		ex, err := r.execs.GetExecution(ctx, &runpb.GetExecutionRequest{Name: r.execName(jobID, exec)}, gcperr.Retry())
		switch {
		case gcperr.Is(err, codes.NotFound):
			vanished = true
			return true, nil
		case err != nil:
			return false, nil
		case ex.GetCompletionTime() != nil:
			done = ex
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

// Wait blocks until the container meets cond. Every pending Wait of the
// Runtime shares one poller.
func (r *Runtime) Wait(ctx context.Context, id string, cond gantry.WaitCondition) (gantry.ExitStatus, error) {
	switch cond {
	case "", gantry.WaitNotRunning, gantry.WaitNextExit, gantry.WaitRemoved:
	default:
		return gantry.ExitStatus{}, fmt.Errorf("cloudrun: wait %q: %w: condition %q is not not-running, next-exit or removed", id, gantry.ErrInvalidArgument, cond)
	}
	j, err := r.resolve(ctx, "wait", id)
	if err != nil {
		return gantry.ExitStatus{}, err
	}
	switch cond {
	case gantry.WaitNextExit:
		return r.waitNextExit(ctx, j)
	case gantry.WaitRemoved:
		return r.waitRemoved(ctx, j)
	}
	st, err := r.waitNotRunning(ctx, j)
	if errors.Is(err, errVanished) {
		return st, fmt.Errorf("cloudrun: wait %q: %w: the container was removed while it ran", id, gantry.ErrNotFound)
	}
	return st, err
}

// waitNotRunning returns the status of the latest run once it is over
// (at once if it is), or zero for a container that never ran.
func (r *Runtime) waitNotRunning(ctx context.Context, j *job) (gantry.ExitStatus, error) {
	l := j.latest()
	if l == nil {
		return gantry.ExitStatus{}, nil
	}
	if l.GetCompletionTime() != nil {
		return r.exitStatus(ctx, j.id(), l.GetName(), l.GetCompletionStatus() == runpb.ExecutionReference_EXECUTION_SUCCEEDED, l.GetCompletionStatus() == runpb.ExecutionReference_EXECUTION_CANCELLED)
	}
	ex, err := r.waitExecution(ctx, j.id(), l.GetName())
	if err != nil {
		return gantry.ExitStatus{}, err
	}
	return r.execStatus(ctx, j.id(), ex)
}

// waitNextExit waits for the running execution, or for the first one
// created after the call, to complete.
func (r *Runtime) waitNextExit(ctx context.Context, j *job) (gantry.ExitStatus, error) {
	if j.running() {
		st, err := r.waitNotRunning(ctx, j)
		if errors.Is(err, errVanished) {
			err = fmt.Errorf("cloudrun: wait %q: %w: the container was removed while it ran", j.rec.Name, gantry.ErrNotFound)
		}
		return st, err
	}
	var after time.Time
	if l := j.latest(); l != nil {
		after = timeOf(l.GetCreateTime())
	}
	var done *runpb.Execution
	err := r.watch(ctx, "wait", func(s snapshot) (bool, error) {
		list := s.execs[j.id()]
		// Oldest first: the first run after the baseline to complete.
		for i := len(list) - 1; i >= 0; i-- {
			ex := list[i]
			if ex.GetCreateTime().AsTime().After(after) && ex.GetCompletionTime() != nil {
				done = ex
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return gantry.ExitStatus{}, err
	}
	return r.execStatus(ctx, j.id(), done)
}

// waitRemoved returns once the container's job is gone, with the status
// of its last run.
func (r *Runtime) waitRemoved(ctx context.Context, j *job) (gantry.ExitStatus, error) {
	r.removedWaiters.add(1)
	defer r.removedWaiters.add(-1)
	var st gantry.ExitStatus
	if j.running() {
		var err error
		st, err = r.waitNotRunning(ctx, j)
		switch {
		case errors.Is(err, errVanished):
			return gantry.ExitStatus{ExitCode: 128 + 9, Signal: "SIGKILL", Error: "removed while running"}, nil
		case err != nil:
			return st, err
		}
	} else if j.latest() != nil {
		var err error
		if st, err = r.waitNotRunning(ctx, j); err != nil {
			return st, err
		}
	}
	idLabel := j.pb.GetLabels()[meta.LabelID]
	err := r.watch(ctx, "wait for removal", func(s snapshot) (bool, error) {
		return s.jobs != nil && s.jobs[j.id()] != idLabel, nil
	})
	return st, err
}

// stoppedAt blocks until the container is not running and returns when
// its last run finished (zero if it never ran): Logs' end of following.
func (r *Runtime) stoppedAt(j *job) func(context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		l := j.latest()
		switch {
		case l == nil:
			return time.Time{}, nil
		case l.GetCompletionTime() != nil:
			return timeOf(l.GetCompletionTime()), nil
		}
		ex, err := r.waitExecution(ctx, j.id(), l.GetName())
		if errors.Is(err, errVanished) {
			return time.Now(), nil
		}
		if err != nil {
			return time.Time{}, err
		}
		return timeOf(ex.GetCompletionTime()), nil
	}
}
