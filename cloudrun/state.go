package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// container builds the Container a job describes. The exit status of a
// run that did not succeed comes from its task (one more read).
func (r *Runtime) container(ctx context.Context, j *job) (*gantry.Container, error) {
	if j.in != nil {
		return r.describeInstance(ctx, j)
	}
	c := r.describe(j)
	if err := r.completeState(ctx, c, j); err != nil {
		return nil, err
	}
	return c, nil
}

// describe builds the Container a job describes from the job alone: all
// but the exit status of a run that did not succeed.
func (r *Runtime) describe(j *job) *gantry.Container {
	if j.in != nil {
		// What the instance alone says; completeState asks the rest.
		c := &gantry.Container{ID: j.rec.ID, Name: j.rec.Name, Image: j.rec.Spec.Image, Created: j.rec.Created, Spec: j.rec.Spec, Labels: maps.Clone(j.rec.Spec.Labels), Resource: j.in.GetName()}
		if len(j.rec.Spec.Ports) > 0 && len(j.in.GetUrls()) > 0 {
			c.URL = j.in.GetUrls()[0]
		}
		c.State.Status = gantry.StatusExited
		if instanceUp(j.in) {
			c.State.Status, c.State.Running = gantry.StatusRunning, true
		}
		return c
	}
	rec := j.rec
	c := &gantry.Container{
		ID:       rec.ID,
		Name:     rec.Name,
		Image:    rec.Spec.Image,
		Created:  rec.Created,
		Spec:     rec.Spec,
		Labels:   maps.Clone(rec.Spec.Labels),
		Resource: j.pb.GetName(),
		State:    gantry.State{Status: gantry.StatusCreated},
	}
	l := j.latest()
	if l == nil {
		return c
	}
	c.State.StartedAt = timeOf(l.GetCreateTime())
	if l.GetCompletionTime() == nil {
		c.State.Status, c.State.Running = gantry.StatusRunning, true
		return c
	}
	c.State.Status = gantry.StatusExited
	c.State.FinishedAt = timeOf(l.GetCompletionTime())
	return c
}

// completeState fills in what describe could not from j alone: the exit
// status of a last run that has ended, and, while a later run runs, the
// previous run's FinishedAt, which Docker keeps until the next exit (one
// listing of the job's executions).
func (r *Runtime) completeState(ctx context.Context, c *gantry.Container, j *job) error {
	if j.in != nil {
		full, err := r.describeInstance(ctx, j)
		if err != nil {
			return err
		}
		*c = *full
		return nil
	}
	l := j.latest()
	if c.State.Running && j.pb.GetExecutionCount() > 1 {
		at, err := r.previousFinish(ctx, j)
		if err != nil {
			return err
		}
		c.State.FinishedAt = at
	}
	if c.State.Status != gantry.StatusExited || l == nil {
		return nil
	}
	st, err := r.refStatus(ctx, j.id(), l)
	if err != nil {
		return err
	}
	c.State.ExitCode, c.State.Signal, c.State.Error = st.ExitCode, st.Signal, st.Error
	return nil
}

// previousFinish returns when the newest completed execution of j
// finished, or zero when none has.
func (r *Runtime) previousFinish(ctx context.Context, j *job) (time.Time, error) {
	var last time.Time
	it := r.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: j.pb.GetName(), PageSize: 100}, gcperr.Retry())
	for {
		ex, err := it.Next()
		if isDone(err) {
			return last, nil
		}
		if err != nil {
			return time.Time{}, gcperr.Wrap(ctx, err, "list executions of %s", j.pb.GetName())
		}
		if at := timeOf(ex.GetCompletionTime()); at.After(last) {
			last = at
		}
	}
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// exitStatus returns how execution exec of job jobID ended. A succeeded
// execution of gantry's one task with no retries exited 0; any other reads
// the task's last attempt: its exit code, or 128+N for signal N.
func (r *Runtime) exitStatus(ctx context.Context, jobID, exec string, succeeded, cancelled bool) (gantry.ExitStatus, error) {
	if succeeded {
		return gantry.ExitStatus{}, nil
	}
	name := r.execName(jobID, exec)
	if st, ok := r.exits.get(name); ok {
		return st, nil
	}
	it := r.tasks.ListTasks(ctx, &runpb.ListTasksRequest{Parent: name}, gcperr.Retry())
	var task *runpb.Task
	for {
		t, err := it.Next()
		if isDone(err) {
			break
		}
		if gcperr.Is(err, codes.NotFound) {
			return gantry.ExitStatus{}, &removedFirst{gcperr.Wrap(ctx, err, "exit status of %s: the container was removed before its exit status could be read", name)}
		}
		if err != nil {
			return gantry.ExitStatus{}, gcperr.Wrap(ctx, err, "exit status of %s", name)
		}
		if t.GetIndex() == 0 {
			task = t
			break
		}
	}
	st := taskExit(task, cancelled)
	r.exits.put(name, st)
	return st, nil
}

// errRemovedFirst is what errors.Is finds in the error of an exit status
// that could not be read because the container's job was deleted first.
var errRemovedFirst = errors.New("removed before its exit status could be read")

// removedFirst is that error, with what was asked.
type removedFirst struct{ err error }

func (e *removedFirst) Error() string   { return e.err.Error() }
func (e *removedFirst) Unwrap() []error { return []error{e.err, errRemovedFirst} }

// exitCacheSize bounds the exit statuses a Runtime remembers.
const exitCacheSize = 4096

// exitCache maps finished runs (executions, or starts of an instance) to
// how they ended, which never changes, forgetting the oldest beyond
// exitCacheSize.
type exitCache[V any] struct {
	mu    sync.Mutex
	m     map[string]V
	order []string
}

func (c *exitCache[V]) get(run string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[run]
	return st, ok
}

func (c *exitCache[V]) put(execution string, st V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]V)
	}
	if _, ok := c.m[execution]; ok {
		return
	}
	if len(c.order) == exitCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[execution] = st
	c.order = append(c.order, execution)
}

// taskExit reads the exit status from a task's last attempt.
func taskExit(task *runpb.Task, cancelled bool) gantry.ExitStatus {
	res := task.GetLastAttemptResult()
	switch {
	case res == nil && cancelled:
		return gantry.ExitStatus{ExitCode: 128 + 9, Signal: "SIGKILL", Error: "the execution was cancelled before its task started"}
	case res == nil:
		return gantry.ExitStatus{ExitCode: 125, Error: "the task ended without a result: " + completedMessage(task)}
	case res.GetTermSignal() > 0:
		sig := int(res.GetTermSignal())
		return gantry.ExitStatus{ExitCode: 128 + sig, Signal: gantry.SignalName(sig)}
	case res.GetExitCode() == 0 && res.GetStatus().GetCode() != int32(codes.OK) && res.GetStatus().GetCode() != int32(codes.Canceled):
		// Cloud Run reports a container that never ran (an image that
		// would not pull, a command that does not exist) with no exit
		// code; Docker's code for "could not run" is 125.
		return gantry.ExitStatus{ExitCode: 125, Error: res.GetStatus().GetMessage()}
	case res.GetExitCode() == 0 && cancelled:
		// The proto's exit_code "may be unset if the container was unable
		// to exit cleanly", and unset reads 0: a run that was cancelled
		// and did not succeed must not read as a success. Whether the
		// process exited 0 itself or was killed, Cloud Run does not tell.
		return gantry.ExitStatus{ExitCode: 128 + 9, Signal: "SIGKILL", Error: "the execution was cancelled and Cloud Run reported no exit code for its task"}
	}
	st := gantry.ExitStatus{ExitCode: int(res.GetExitCode())}
	if underAgent(task.GetContainers()) && st.ExitCode > 128 && st.ExitCode <= 128+64 {
		// The agent, as an init, exits 128+N when signal N killed the
		// main process; Cloud Run sees only that code.
		st.Signal = gantry.SignalName(st.ExitCode - 128)
	}
	return st
}

func completedMessage(task *runpb.Task) string {
	for _, c := range task.GetConditions() {
		if c.GetType() == "Completed" && c.GetMessage() != "" {
			return c.GetMessage()
		}
	}
	return fmt.Sprintf("task %s has no completion message", task.GetName())
}

// refStatus is exitStatus for a completed execution's reference.
func (r *Runtime) refStatus(ctx context.Context, jobID string, l *runpb.ExecutionReference) (gantry.ExitStatus, error) {
	return r.exitStatus(ctx, jobID, l.GetName(), l.GetCompletionStatus() == runpb.ExecutionReference_EXECUTION_SUCCEEDED, l.GetCompletionStatus() == runpb.ExecutionReference_EXECUTION_CANCELLED)
}
