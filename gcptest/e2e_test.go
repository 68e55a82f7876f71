package gcptest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/logging/logadmin"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-cmp/cmp"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gantryhq/gantry/gcptest"
)

const parent = "projects/proj/locations/us-central1"

// env is one emulator with the clients a test needs.
type env struct {
	srv   *gcptest.Server
	jobs  *run.JobsClient
	execs *run.ExecutionsClient
	tasks *run.TasksClient
	logs  *logging.Client
}

// newEnv starts a Server with opts and the clients a test needs. The
// strict rules are off unless opts turn them on: each test turns on the
// rules it is about, whatever a Server's default.
func newEnv(t testing.TB, opts ...gcptest.Option) *env {
	t.Helper()
	ctx := context.Background()
	srv, err := gcptest.NewServer(append([]gcptest.Option{gcptest.Relaxed()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	e := &env{srv: srv}
	if e.jobs, err = run.NewJobsClient(ctx, srv.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	if e.execs, err = run.NewExecutionsClient(ctx, srv.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	if e.tasks, err = run.NewTasksClient(ctx, srv.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	if e.logs, err = logging.NewClient(ctx, srv.ClientOptions()...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.jobs.Close()
		e.execs.Close()
		e.tasks.Close()
		e.logs.Close()
	})
	return e
}

func shJob(script string) *runpb.Job {
	return &runpb.Job{Template: &runpb.ExecutionTemplate{
		Template: &runpb.TaskTemplate{
			Retries:    &runpb.TaskTemplate_MaxRetries{MaxRetries: 0},
			Containers: []*runpb.Container{{Image: "busybox", Command: []string{"sh", "-c", script}}},
		},
	}}
}

func (e *env) createJob(t testing.TB, id string, job *runpb.Job) *runpb.Job {
	t.Helper()
	ctx := context.Background()
	op, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, JobId: id, Job: job})
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	for !op.Done() {
		if _, err := op.Poll(ctx); err != nil {
			t.Fatalf("CreateJob operation: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	j, err := op.Wait(ctx)
	if err != nil {
		t.Fatalf("CreateJob operation: %v", err)
	}
	return j
}

// pollRun polls a RunJob operation every 2ms, instead of the library's
// backoff of up to a second, and returns its result.
func pollRun(t testing.TB, op *run.RunJobOperation) (*runpb.Execution, error) {
	t.Helper()
	for {
		ex, err := op.Poll(context.Background())
		if err != nil || op.Done() {
			return ex, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func codeOf(err error) codes.Code {
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		return ae.GRPCStatus().Code()
	}
	return status.Code(err)
}

func (e *env) listTasks(t *testing.T, parent string) []*runpb.Task {
	t.Helper()
	var out []*runpb.Task
	it := e.tasks.ListTasks(context.Background(), &runpb.ListTasksRequest{Parent: parent})
	for {
		task, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("ListTasks(%s): %v", parent, err)
		}
		out = append(out, task)
	}
}

func (e *env) listLogs(t *testing.T, filter string) []*loggingpb.LogEntry {
	t.Helper()
	var out []*loggingpb.LogEntry
	it := e.logs.ListLogEntries(context.Background(), &loggingpb.ListLogEntriesRequest{
		ResourceNames: []string{"projects/proj"},
		Filter:        filter,
		OrderBy:       "timestamp asc",
	})
	for {
		le, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("ListLogEntries(%q): %v", filter, err)
		}
		out = append(out, le)
	}
}

// TestDoneWhen is the acceptance scenario, through the official
// clients only: a failing job's RunJob operation fails, the task reports
// exit code 3, and both lines are in Cloud Logging as Cloud Run writes
// them.
func TestDoneWhen(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.createJob(t, "done-when", shJob("echo out; echo err >&2; exit 3"))
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/done-when"})
	if err != nil {
		t.Fatalf("RunJob: %v", err)
	}
	_, err = op.Wait(ctx)
	if err == nil {
		t.Fatal("RunJob operation succeeded; want it to fail with the non-zero exit")
	}
	if got := codeOf(err); got != codes.FailedPrecondition {
		t.Errorf("RunJob operation error code = %v, want FailedPrecondition (%v)", got, err)
	}
	meta, err := op.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	tasks := e.listTasks(t, meta.GetName())
	if len(tasks) != 1 {
		t.Fatalf("got %d tasks, want 1", len(tasks))
	}
	if got := tasks[0].GetLastAttemptResult().GetExitCode(); got != 3 {
		t.Errorf("last_attempt_result.exit_code = %d, want 3", got)
	}
	execID := meta.GetName()[len(parent+"/jobs/done-when/executions/"):]
	entries := e.listLogs(t, `resource.type="cloud_run_job" AND resource.labels.job_name="done-when" AND labels."run.googleapis.com/execution_name"="`+execID+`"`)
	type line struct{ LogName, Text, Type, Job, Location, Project, Exec, Index, Attempt string }
	var got []line
	for _, le := range entries {
		got = append(got, line{le.LogName, le.GetTextPayload(), le.Resource.Type, le.Resource.Labels["job_name"],
			le.Resource.Labels["location"], le.Resource.Labels["project_id"], le.Labels["run.googleapis.com/execution_name"],
			le.Labels["run.googleapis.com/task_index"], le.Labels["run.googleapis.com/task_attempt"]})
		if le.InsertId == "" || le.Timestamp == nil {
			t.Errorf("entry %q lacks insertId or timestamp", le.GetTextPayload())
		}
	}
	slices.SortFunc(got, func(a, b line) int { return strings.Compare(a.Text, b.Text) })
	want := []line{
		{"projects/proj/logs/run.googleapis.com%2Fstderr", "err", "cloud_run_job", "done-when", "us-central1", "proj", execID, "0", "0"},
		{"projects/proj/logs/run.googleapis.com%2Fstdout", "out", "cloud_run_job", "done-when", "us-central1", "proj", execID, "0", "0"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log entries (-want +got):\n%s", diff)
	}
}

func TestJobLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	j := e.createJob(t, "life", shJob("exit 0"))
	if j.Name != parent+"/jobs/life" || j.Uid == "" || j.Generation != 1 || j.Reconciling || j.ObservedGeneration != 1 ||
		j.TerminalCondition.GetState() != runpb.Condition_CONDITION_SUCCEEDED || j.Etag == "" || j.Creator == "" {
		t.Errorf("created job has wrong output fields: %v", j)
	}
	if got := j.Template.Template.GetMaxRetries(); got != 0 {
		t.Errorf("max_retries = %d, want the 0 given", got)
	}
	if got := j.Template.TaskCount; got != 1 {
		t.Errorf("default task_count = %d, want 1", got)
	}
	if got := j.Template.Template.Timeout.AsDuration(); got != 10*time.Minute {
		t.Errorf("default timeout = %s, want 10m", got)
	}
	got, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.Name})
	if err != nil || got.Uid != j.Uid {
		t.Fatalf("GetJob = %v, %v", got, err)
	}
	for i := range 3 {
		op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: j.Name})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := pollRun(t, op)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if ex.SucceededCount != 1 || ex.CompletionTime == nil || ex.Reconciling {
			t.Errorf("run %d: execution %v", i, ex)
		}
	}
	got, _ = e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.Name})
	if got.ExecutionCount != 3 || got.LatestCreatedExecution.GetCompletionStatus() != runpb.ExecutionReference_EXECUTION_SUCCEEDED {
		t.Errorf("job after 3 runs: execution_count %d, latest %v", got.ExecutionCount, got.LatestCreatedExecution)
	}
	var names []string
	it := e.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: parent + "/jobs/-", PageSize: 2})
	for {
		ex, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ex.Name)
	}
	if len(names) != 3 {
		t.Errorf("ListExecutions(jobs/-) = %d executions, want 3", len(names))
	}
	if n := len(e.listTasks(t, parent+"/jobs/-/executions/-")); n != 3 {
		t.Errorf("ListTasks(-/-) = %d tasks, want 3", n)
	}
	dop, err := e.jobs.DeleteJob(ctx, &runpb.DeleteJobRequest{Name: j.Name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dop.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.Name}); codeOf(err) != codes.NotFound {
		t.Errorf("GetJob after delete: %v, want NotFound", err)
	}
	if _, err := e.execs.GetExecution(ctx, &runpb.GetExecutionRequest{Name: names[0]}); codeOf(err) != codes.NotFound {
		t.Errorf("GetExecution after job delete: %v, want NotFound", err)
	}
}

func TestTaskEnvironment(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	job := shJob(`echo "$CLOUD_RUN_JOB $CLOUD_RUN_EXECUTION $CLOUD_RUN_TASK_INDEX $CLOUD_RUN_TASK_ATTEMPT $CLOUD_RUN_TASK_COUNT $GREETING"`)
	job.Template.TaskCount = 2
	job.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "GREETING", Values: &runpb.EnvVar_Value{Value: "hi"}}}
	e.createJob(t, "envjob", job)
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/envjob"})
	if err != nil {
		t.Fatal(err)
	}
	if !op.Done() {
		t.Fatal("RunJob with instant operations returned an operation that is not done")
	}
	ex, err := op.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	execID := ex.Name[len(parent+"/jobs/envjob/executions/"):]
	var got []string
	for _, le := range e.listLogs(t, `resource.labels.job_name="envjob"`) {
		got = append(got, le.GetTextPayload())
	}
	slices.Sort(got)
	want := []string{fmt.Sprintf("envjob %s 0 0 2 hi", execID), fmt.Sprintf("envjob %s 1 0 2 hi", execID)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task output (-want +got):\n%s", diff)
	}
}

// TestLogadmin reads a task's output with logadmin, which adds its own
// 24-hour timestamp clause and unescapes log names.
func TestLogadmin(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	e.createJob(t, "admin", shJob("echo via-logadmin >&2"))
	if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/admin"}); err != nil {
		t.Fatal(err)
	}
	c, err := logadmin.NewClient(ctx, "projects/proj", e.srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	it := c.Entries(ctx, logadmin.Filter(`resource.type="cloud_run_job" AND resource.labels.job_name="admin" AND logName="projects/proj/logs/run.googleapis.com%2Fstderr"`))
	var got []string
	for {
		le, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v %s", le.LogName, le.Payload, le.Resource.Labels["job_name"]))
	}
	want := []string{"projects/proj/logs/run.googleapis.com/stderr via-logadmin admin"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("logadmin entries (-want +got):\n%s", diff)
	}
}
