package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/poll"
	"go.uber.org/zap"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
)

// snapshot is what one poller tick learns: the executions of gantry's
// jobs in the region that some Wait may need, by job ID, newest first;
// and, while a Wait for removal is pending, the ID label of every gantry
// job.
type snapshot struct {
	execs map[string][]*runpb.Execution
	jobs  map[string]string
}

// manyPages is how many ListExecutions pages in one tick make the poller
// warn: Cloud Run's executions.list has no filter, so a region with a
// long history of executions makes every tick that needs old ones cost.
const manyPages = 10

// fetch is the poller's one read per tick: ListExecutions over the "-"
// wildcard (all jobs), plus ListJobs only while someone waits for a
// removal. Its cost does not depend on how many Waits are pending. Cloud
// Run lists executions newest first and offers no filter, so paging stops
// at the first page that reaches past the oldest execution a pending Wait
// needs (its horizon); only a Wait with no horizon pages through the
// region's whole history. A failed read is not retried here: the poller
// backs off and tries again on a later tick.
func (r *Runtime) fetch(ctx context.Context) (snapshot, error) {
	s := snapshot{}
	if horizon, ok := r.horizons.oldest(); ok {
		execs, err := r.listExecutions(ctx, horizon)
		if err != nil {
			r.log.Warn("poll failed; waiters keep waiting and the poller backs off", zap.Error(err))
			return snapshot{}, err
		}
		s.execs = execs
	}
	if r.removedWaiters.get() > 0 {
		s.jobs = map[string]string{}
		it := r.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: r.parent, PageSize: 1000})
		for {
			j, err := it.Next()
			if isDone(err) {
				break
			}
			if err != nil {
				r.log.Warn("poll failed; waiters keep waiting and the poller backs off", zap.Error(err))
				return snapshot{}, gcperr.Wrap(ctx, err, "poll jobs")
			}
			if meta.Managed(j.GetLabels()) {
				s.jobs[lastSegment(j.GetName())] = j.GetLabels()[meta.LabelID]
			}
		}
	}
	return s, nil
}

// listExecutions lists the region's executions, newest first, down to the
// first page that ends before horizon (all of them for a zero horizon),
// and keeps those of gantry's jobs.
func (r *Runtime) listExecutions(ctx context.Context, horizon time.Time) (map[string][]*runpb.Execution, error) {
	out := map[string][]*runpb.Execution{}
	it := r.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: r.jobName("-"), PageSize: r.pageSize})
	pager := iterator.NewPager(it, int(r.pageSize), "")
	pages, listed := 0, 0
	for {
		var page []*runpb.Execution
		next, err := pager.NextPage(&page)
		if err != nil {
			return nil, gcperr.Wrap(ctx, err, "poll executions")
		}
		pages++
		listed += len(page)
		for _, ex := range page {
			jobID := lastSegment(ex.GetJob())
			if strings.HasPrefix(jobID, jobPrefix) {
				out[jobID] = append(out[jobID], ex)
			}
		}
		past := len(page) > 0 && !horizon.IsZero() && timeOf(page[len(page)-1].GetCreateTime()).Before(horizon)
		if next == "" || past {
			break
		}
	}
	r.log.Debug("polled executions", zap.Int("pages", pages), zap.Int("executions", listed))
	if pages > manyPages {
		r.manyPagesOnce.Do(func() {
			r.log.Warn("a poll read many pages of executions: Cloud Run cannot filter executions.list, so every tick pages through the region's history down to the oldest execution being waited on",
				zap.Int("pages", pages), zap.Int("executions", listed))
		})
	}
	for _, list := range out {
		slices.SortFunc(list, func(a, b *runpb.Execution) int {
			return b.GetCreateTime().AsTime().Compare(a.GetCreateTime().AsTime())
		})
	}
	return out, nil
}

// horizonSet holds, for each pending watch of executions, the creation
// time of the oldest execution it needs to see: the poller pages no
// further back than the oldest of them.
type horizonSet struct {
	mu sync.Mutex
	n  map[time.Time]int
}

// add registers horizon t (zero: every execution) until the returned
// function is called.
func (h *horizonSet) add(t time.Time) func() {
	t = t.UTC()
	h.mu.Lock()
	if h.n == nil {
		h.n = map[time.Time]int{}
	}
	h.n[t]++
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.n[t]--; h.n[t] == 0 {
			delete(h.n, t)
		}
	}
}

// oldest returns the earliest registered horizon, and false when no watch
// needs executions at all.
func (h *horizonSet) oldest() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var min time.Time
	first := true
	for t := range h.n {
		if first || t.Before(min) {
			min, first = t, false
		}
	}
	return min, !first
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

// errVanished means an execution left the listing: its job was deleted.
var errVanished = errors.New("execution no longer exists")

// waitExecution blocks until execution ref of jobID has completed and
// returns it; what names the request in errors.
func (r *Runtime) waitExecution(ctx context.Context, jobID string, ref *runpb.ExecutionReference) (*runpb.Execution, error) {
	exec := lastSegment(ref.GetName())
	defer r.horizons.add(timeOf(ref.GetCreateTime()))()
	var done *runpb.Execution
	var vanished bool
	err := r.watch(ctx, func(s snapshot) (bool, error) {
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
		case err != nil && permanent(err):
			return false, gcperr.Wrap(ctx, err, "read execution %s", exec)
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
	if l.GetCompletionTime() != nil {
		return r.exitStatus(ctx, j.id(), l.GetName(), l.GetCompletionStatus() == runpb.ExecutionReference_EXECUTION_SUCCEEDED, l.GetCompletionStatus() == runpb.ExecutionReference_EXECUTION_CANCELLED)
	}
	ex, err := r.waitExecution(ctx, j.id(), l)
	if err != nil {
		return gantry.ExitStatus{}, err
	}
	return r.execStatus(ctx, j.id(), ex)
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
	// Executions are listed newest first: none the Wait needs is older
	// than the latest one it has seen, or else than the job.
	after, horizon := time.Time{}, timeOf(j.pb.GetCreateTime())
	if l := j.latest(); l != nil {
		after = timeOf(l.GetCreateTime())
		horizon = after
	}
	defer r.horizons.add(horizon)()
	r.removedWaiters.add(1)
	defer r.removedWaiters.add(-1)
	idLabel := j.pb.GetLabels()[meta.LabelID]
	var done *runpb.Execution
	removed := false
	err := r.watch(ctx, func(s snapshot) (bool, error) {
		list := s.execs[j.id()]
		// Oldest first: the first run after the baseline to complete.
		for i := len(list) - 1; i >= 0; i-- {
			ex := list[i]
			if ex.GetCreateTime().AsTime().After(after) && ex.GetCompletionTime() != nil {
				done = ex
				return true, nil
			}
		}
		if s.jobs != nil && s.jobs[j.id()] != idLabel {
			removed = true
			return true, nil
		}
		return false, nil
	})
	switch {
	case err != nil:
		return gantry.ExitStatus{}, err
	case removed:
		return last, nil
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
	err := r.watch(ctx, func(s snapshot) (bool, error) {
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
		ex, err := r.waitExecution(ctx, j.id(), l)
		if errors.Is(err, errVanished) {
			return time.Now(), nil
		}
		if err != nil {
			return time.Time{}, err
		}
		return timeOf(ex.GetCompletionTime()), nil
	}
}
