package gcptest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
	"github.com/gantryhq/gantry/gcptest"
)

// runToEnd runs a job and waits for its operation; it returns the final
// execution, the execution's tasks and the operation's error.
func (e *env) runToEnd(t *testing.T, job string, overrides *runpb.RunJobRequest_Overrides) (*runpb.Execution, []*runpb.Task, error) {
	t.Helper()
	ctx := context.Background()
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/" + job, Overrides: overrides})
	if err != nil {
		t.Fatalf("RunJob: %v", err)
	}
	_, opErr := pollRun(t, op)
	meta, err := op.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := e.execs.GetExecution(ctx, &runpb.GetExecutionRequest{Name: meta.Name})
	if err != nil {
		t.Fatal(err)
	}
	return ex, e.listTasks(t, ex.Name), opErr
}

type counts struct{ Running, Succeeded, Failed, Cancelled, Retried int32 }

func countsOf(ex *runpb.Execution) counts {
	return counts{ex.RunningCount, ex.SucceededCount, ex.FailedCount, ex.CancelledCount, ex.RetriedCount}
}

func completed(c []*runpb.Condition) *runpb.Condition {
	for _, x := range c {
		if x.Type == "Completed" {
			return x
		}
	}
	return nil
}

func TestExitCodesAndSignals(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	for _, tc := range []struct {
		id, script   string
		code, signal int32
	}{
		{"exit0", "exit 0", 0, 0},
		{"exit1", "exit 1", 1, 0},
		{"exit255", "exit 255", 255, 0},
		{"sigkill", "kill -KILL $$", 0, 9},
		{"sigterm", "kill -TERM $$", 0, 15},
	} {
		id := tc.id
		e.createJob(t, id, shJob(tc.script))
		ex, tasks, opErr := e.runToEnd(t, id, nil)
		r := tasks[0].GetLastAttemptResult()
		if r.GetExitCode() != tc.code || r.GetTermSignal() != tc.signal {
			t.Errorf("%q: exit_code %d term_signal %d, want %d %d", tc.script, r.GetExitCode(), r.GetTermSignal(), tc.code, tc.signal)
		}
		ok := tc.code == 0 && tc.signal == 0
		if (opErr == nil) != ok {
			t.Errorf("%q: RunJob operation error %v, want success %v", tc.script, opErr, ok)
		}
		c := completed(ex.Conditions)
		if ok {
			if c.GetState() != runpb.Condition_CONDITION_SUCCEEDED || r.GetStatus().GetCode() != 0 {
				t.Errorf("%q: Completed %v, status %v", tc.script, c, r.GetStatus())
			}
			continue
		}
		if c.GetState() != runpb.Condition_CONDITION_FAILED || c.GetExecutionReason() != runpb.Condition_NON_ZERO_EXIT_CODE {
			t.Errorf("%q: Completed condition %v, want FAILED with NON_ZERO_EXIT_CODE", tc.script, c)
		}
		if got := countsOf(ex); got != (counts{Failed: 1}) {
			t.Errorf("%q: counts %+v", tc.script, got)
		}
	}
}

func TestRetries(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	job := shJob(`echo "attempt $CLOUD_RUN_TASK_ATTEMPT"; [ "$CLOUD_RUN_TASK_ATTEMPT" -ge 2 ] || exit 7`)
	job.Template.Template.Retries = &runpb.TaskTemplate_MaxRetries{MaxRetries: 3}
	e.createJob(t, "flaky", job)
	ex, tasks, opErr := e.runToEnd(t, "flaky", nil)
	if opErr != nil {
		t.Fatalf("RunJob operation: %v", opErr)
	}
	if got := countsOf(ex); got != (counts{Succeeded: 1, Retried: 2}) {
		t.Errorf("counts %+v, want 1 succeeded after 2 retries", got)
	}
	if tasks[0].Retried != 2 || tasks[0].LastAttemptResult.GetExitCode() != 0 {
		t.Errorf("task retried %d, last result %v", tasks[0].Retried, tasks[0].LastAttemptResult)
	}
	var lines []string
	for _, le := range e.listLogs(t, `resource.labels.job_name="flaky"`) {
		lines = append(lines, le.Labels["run.googleapis.com/task_attempt"]+":"+le.GetTextPayload())
	}
	if diff := cmp.Diff([]string{"0:attempt 0", "1:attempt 1", "2:attempt 2"}, lines); diff != "" {
		t.Errorf("attempt logs (-want +got):\n%s", diff)
	}

	job = shJob("exit 4")
	job.Template.Template.Retries = &runpb.TaskTemplate_MaxRetries{MaxRetries: 1}
	job.Template.TaskCount = 2
	e.createJob(t, "always-fails", job)
	ex, tasks, opErr = e.runToEnd(t, "always-fails", nil)
	if codeOf(opErr) != codes.FailedPrecondition {
		t.Errorf("RunJob operation error %v, want FailedPrecondition", opErr)
	}
	if got := countsOf(ex); got != (counts{Failed: 2, Retried: 2}) {
		t.Errorf("counts %+v, want 2 failed after 1 retry each", got)
	}
	for _, task := range tasks {
		if task.Retried != 1 || task.LastAttemptResult.GetExitCode() != 4 {
			t.Errorf("task %s: retried %d, result %v", task.Name, task.Retried, task.LastAttemptResult)
		}
	}
}

func TestTimeout(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithStopGracePeriod(5*time.Second))
	e.createJob(t, "slow", shJob("sleep 60"))
	ex, tasks, opErr := e.runToEnd(t, "slow", &runpb.RunJobRequest_Overrides{Timeout: durationpb.New(time.Second)})
	if codeOf(opErr) != codes.FailedPrecondition {
		t.Errorf("RunJob operation error %v, want FailedPrecondition", opErr)
	}
	r := tasks[0].LastAttemptResult
	if r.GetTermSignal() != 15 || codes.Code(r.GetStatus().GetCode()) != codes.DeadlineExceeded {
		t.Errorf("last attempt %v, want SIGTERM and DEADLINE_EXCEEDED", r)
	}
	if got := tasks[0].Timeout.AsDuration(); got != time.Second {
		t.Errorf("task timeout %s, want the overridden 1s", got)
	}
	if got := countsOf(ex); got != (counts{Failed: 1}) {
		t.Errorf("counts %+v", got)
	}
}

// waitRunning polls the execution until n tasks run.
func (e *env) waitRunning(t *testing.T, name string, n int32) {
	t.Helper()
	for {
		ex, err := e.execs.GetExecution(context.Background(), &runpb.GetExecutionRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if ex.RunningCount >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, gcptest.WithStopGracePeriod(200*time.Millisecond))
	ctx := context.Background()
	// The trap must be set before the cancellation, or SIGTERM ends the
	// shell: the script says when it is.
	trapped := filepath.Join(t.TempDir(), "trapped")
	for _, tc := range []struct {
		id, script string
		signal     int32
		ready      string
	}{
		{"obeys-term", "sleep 60", 15, ""},
		{"ignores-term", "trap '' TERM; touch " + trapped + "; while :; do sleep 0.05; done", 9, trapped},
	} {
		job := shJob(tc.script)
		job.Template.TaskCount = 3
		job.Template.Parallelism = 1
		e.createJob(t, tc.id, job)
		op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/" + tc.id})
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := op.Metadata()
		e.waitRunning(t, meta.Name, 1)
		for tc.ready != "" {
			if _, err := os.Stat(tc.ready); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cop, err := e.execs.CancelExecution(ctx, &runpb.CancelExecutionRequest{Name: meta.Name})
		if err != nil {
			t.Fatalf("CancelExecution: %v", err)
		}
		ex, err := cop.Wait(ctx)
		if err != nil {
			t.Fatalf("CancelExecution operation: %v", err)
		}
		if _, err := pollRun(t, op); codeOf(err) != codes.Canceled {
			t.Errorf("%s: RunJob operation error %v, want Canceled", tc.id, err)
		}
		if got := countsOf(ex); got != (counts{Cancelled: 3}) {
			t.Errorf("%s: counts %+v, want 3 cancelled", tc.id, got)
		}
		if c := completed(ex.Conditions); c.GetExecutionReason() != runpb.Condition_CANCELLED {
			t.Errorf("%s: Completed condition %v", tc.id, c)
		}
		tasks := e.listTasks(t, meta.Name)
		if got := tasks[0].LastAttemptResult.GetTermSignal(); got != tc.signal {
			t.Errorf("%s: task 0 term_signal %d, want %d", tc.id, got, tc.signal)
		}
		for _, task := range tasks[1:] {
			if task.StartTime != nil || task.LastAttemptResult != nil {
				t.Errorf("%s: task %d ran after the cancellation", tc.id, task.Index)
			}
		}
		j, _ := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: parent + "/jobs/" + tc.id})
		if j.LatestCreatedExecution.GetCompletionStatus() != runpb.ExecutionReference_EXECUTION_CANCELLED {
			t.Errorf("%s: latest execution %v", tc.id, j.LatestCreatedExecution)
		}
		if _, err := e.execs.CancelExecution(ctx, &runpb.CancelExecutionRequest{Name: meta.Name}); codeOf(err) != codes.FailedPrecondition {
			t.Errorf("%s: second CancelExecution: %v, want FailedPrecondition", tc.id, err)
		}
	}
}

// TestParallelism checks that with parallelism 1 no two tasks overlap:
// each appends its start and end to a shared file.
func TestParallelism(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	f := filepath.Join(t.TempDir(), "trace")
	job := shJob(`echo "start $CLOUD_RUN_TASK_INDEX" >> ` + f + `; sleep 0.05; echo "end $CLOUD_RUN_TASK_INDEX" >> ` + f)
	job.Template.TaskCount = 4
	job.Template.Parallelism = 1
	e.createJob(t, "serial", job)
	ex, _, opErr := e.runToEnd(t, "serial", nil)
	if opErr != nil || ex.SucceededCount != 4 || ex.Parallelism != 1 {
		t.Fatalf("execution %v, %v", ex, opErr)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		s, en := strings.TrimPrefix(lines[i], "start "), strings.TrimPrefix(lines[i+1], "end ")
		if !strings.HasPrefix(lines[i], "start ") || s != en {
			t.Fatalf("tasks overlapped:\n%s", b)
		}
	}
	if len(lines) != 8 {
		t.Errorf("trace has %d lines, want 8:\n%s", len(lines), b)
	}
}

func TestOverrides(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	job := shJob("")
	job.Template.Template.Containers[0].Command = []string{"sh", "-c", `echo "$0 $1 $MODE"`}
	job.Template.Template.Containers[0].Args = []string{"default-arg0", "default-arg1"}
	job.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "MODE", Values: &runpb.EnvVar_Value{Value: "job"}}}
	e.createJob(t, "over", job)
	ex, tasks, opErr := e.runToEnd(t, "over", &runpb.RunJobRequest_Overrides{
		TaskCount: 2,
		ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{
			Args: []string{"a0", "a1"},
			Env:  []*runpb.EnvVar{{Name: "MODE", Values: &runpb.EnvVar_Value{Value: "override"}}},
		}},
	})
	if opErr != nil || ex.TaskCount != 2 || len(tasks) != 2 {
		t.Fatalf("execution %v (%d tasks), %v", ex, len(tasks), opErr)
	}
	for _, le := range e.listLogs(t, `resource.labels.job_name="over"`) {
		if le.GetTextPayload() != "a0 a1 override" {
			t.Errorf("task printed %q, want the overridden args and env", le.GetTextPayload())
		}
	}
	j, _ := e.jobs.GetJob(context.Background(), &runpb.GetJobRequest{Name: parent + "/jobs/over"})
	if got := j.Template.Template.Containers[0].Args; !cmp.Equal(got, []string{"default-arg0", "default-arg1"}) || j.Template.TaskCount != 1 {
		t.Errorf("overrides changed the job: args %q, task_count %d", got, j.Template.TaskCount)
	}
}

// TestCloseKillsProcesses checks that Close leaves no task process
// behind: the task records its PID, and after Close the PID is gone.
func TestCloseKillsProcesses(t *testing.T) {
	srv, err := gcptest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv}
	ctx := context.Background()
	e.jobs, err = run.NewJobsClient(ctx, srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.jobs.Close()
	if e.execs, err = run.NewExecutionsClient(ctx, srv.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	defer e.execs.Close()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.createJob(t, "lingers", shJob(`echo $$ > `+pidFile+`.tmp && mv `+pidFile+`.tmp `+pidFile+`; exec sleep 600`))
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/lingers"})
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := op.Metadata()
	e.waitRunning(t, meta.Name, 1)
	var pid int
	for {
		b, err := os.ReadFile(pidFile)
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("task process %d still exists after Close (kill 0: %v)", pid, err)
	}
}

// gatedRuntime holds every container creation until gate is closed, so a
// test sees an execution whose tasks have not started.
type gatedRuntime struct {
	gantry.Runtime
	gate chan struct{}
}

func (g gatedRuntime) Create(ctx context.Context, spec gantry.Spec) (*gantry.Container, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Runtime.Create(ctx, spec)
}

// TestLatestCreatedExecutionStatus follows the job's
// latest_created_execution: PENDING until a task has started, RUNNING
// while it runs, then how it ended.
func TestLatestCreatedExecutionStatus(t *testing.T) {
	rt := fake.New(fake.WithHostProcesses())
	t.Cleanup(func() { rt.Close() })
	gate := make(chan struct{})
	e := newEnv(t, gcptest.WithRuntime(gatedRuntime{rt, gate}))
	ctx := context.Background()
	release := filepath.Join(t.TempDir(), "release")
	j := e.createJob(t, "phases", shJob(`while [ ! -e `+release+` ]; do sleep 0.01; done`))
	latest := func() *runpb.ExecutionReference {
		t.Helper()
		got, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.Name})
		if err != nil {
			t.Fatal(err)
		}
		return got.LatestCreatedExecution
	}
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: j.Name})
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := op.Metadata()
	l := latest()
	if l.GetCompletionStatus() != runpb.ExecutionReference_EXECUTION_PENDING || !strings.HasSuffix(meta.Name, "/"+l.GetName()) || l.CreateTime == nil {
		t.Errorf("before any task started: latest_created_execution %v, want PENDING for %s", l, meta.Name)
	}
	close(gate)
	e.waitRunning(t, meta.Name, 1)
	if got := latest().GetCompletionStatus(); got != runpb.ExecutionReference_EXECUTION_RUNNING {
		t.Errorf("while the task runs: completion_status %v, want RUNNING", got)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pollRun(t, op); err != nil {
		t.Fatal(err)
	}
	if l := latest(); l.GetCompletionStatus() != runpb.ExecutionReference_EXECUTION_SUCCEEDED || l.CompletionTime == nil {
		t.Errorf("after the execution: latest_created_execution %v, want SUCCEEDED with a completion time", l)
	}
}
