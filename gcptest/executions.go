package gcptest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gantryhq/gantry"
)

// executionRun controls an execution while it runs.
type executionRun struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	op       string
}

func (r *executionRun) cancel() { r.stopOnce.Do(func() { close(r.stop) }) }

func (r *executionRun) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// executionsService is google.cloud.run.v2.Executions.
type executionsService struct {
	runpb.UnimplementedExecutionsServer
	s *Server
}

func condition(typ string, state runpb.Condition_State, msg string, at time.Time) *runpb.Condition {
	return &runpb.Condition{Type: typ, State: state, Message: msg, LastTransitionTime: ts(at)}
}

func withExecutionReason(c *runpb.Condition, r runpb.Condition_ExecutionReason) *runpb.Condition {
	c.Reasons = &runpb.Condition_ExecutionReason_{ExecutionReason: r}
	return c
}

// setCondition replaces the condition of the same type, or appends c.
func setCondition(cs []*runpb.Condition, c *runpb.Condition) []*runpb.Condition {
	for i, old := range cs {
		if old.Type == c.Type {
			cs[i] = c
			return cs
		}
	}
	return append(cs, c)
}

func logURI(loc location, job, execution string) string {
	return fmt.Sprintf("https://console.cloud.google.com/logs/viewer?project=%s&advancedFilter=resource.type%%3D%%22cloud_run_job%%22%%0Aresource.labels.job_name%%3D%%22%s%%22%%0Aresource.labels.location%%3D%%22%s%%22%%0Alabels.%%22run.googleapis.com/execution_name%%22%%3D%%22%s%%22", loc.project, job, loc.location, execution)
}

// applyOverrides applies RunJobRequest.overrides to a copy of the job's
// execution template.
func applyOverrides(t *runpb.ExecutionTemplate, o *runpb.RunJobRequest_Overrides) error {
	if o == nil {
		return nil
	}
	if o.DelayExecution != nil && *o.DelayExecution {
		return status.Error(codes.Unimplemented, "overrides.delay_execution is not supported by gcptest")
	}
	if o.TaskCount < 0 || o.TaskCount > maxTaskCount {
		return invalid("overrides.task_count %d must be between 1 and %d", o.TaskCount, maxTaskCount)
	}
	if o.TaskCount > 0 {
		t.TaskCount = o.TaskCount
		if t.Parallelism > t.TaskCount {
			t.Parallelism = t.TaskCount
		}
	}
	if o.Timeout != nil {
		if err := validateTimeout("overrides.timeout", o.Timeout.AsDuration(), o.Timeout.CheckValid()); err != nil {
			return err
		}
		t.Template.Timeout = o.Timeout
		if usesGPU(t.Template.Containers) && o.Timeout.AsDuration() > maxGPUTaskTimeout {
			return invalid("overrides.timeout %s: a task with a GPU runs for at most %s", o.Timeout.AsDuration(), maxGPUTaskTimeout)
		}
	}
	cs := t.Template.Containers
	overridden := map[*runpb.Container]bool{}
	for i, co := range o.ContainerOverrides {
		var c *runpb.Container
		if co.Name == "" {
			if len(cs) > 1 {
				return invalid("overrides.container_overrides[%d].name is required: the job has %d containers", i, len(cs))
			}
			c = cs[0]
		} else {
			for _, x := range cs {
				if x.Name == co.Name {
					c = x
				}
			}
			if c == nil {
				return invalid("overrides.container_overrides[%d].name %q names no container of the job", i, co.Name)
			}
		}
		if overridden[c] {
			return invalid("overrides.container_overrides[%d]: container %q is overridden twice", i, co.Name)
		}
		overridden[c] = true
		if len(co.Args) > maxArgs {
			return invalid("overrides.container_overrides[%d].args: %d arguments; the maximum is %d per container", i, len(co.Args), maxArgs)
		}
		if co.ClearArgs && len(co.Args) > 0 {
			return invalid("overrides.container_overrides[%d]: clear_args cannot be set together with args", i)
		}
		if co.ClearArgs {
			c.Args = nil
		} else if len(co.Args) > 0 {
			c.Args = slices.Clone(co.Args)
		}
		if err := validateEnv(fmt.Sprintf("overrides.container_overrides[%d].env", i), co.Env); err != nil {
			return err
		}
		for _, e := range co.Env {
			replaced := false
			for j, old := range c.Env {
				if old.Name == e.Name {
					c.Env[j] = clone(e)
					replaced = true
				}
			}
			if !replaced {
				c.Env = append(c.Env, clone(e))
			}
		}
		if len(c.Env) > maxEnvPerContainer {
			return invalid("overrides.container_overrides[%d].env: the container would have %d variables; the maximum is %d", i, len(c.Env), maxEnvPerContainer)
		}
	}
	return nil
}

// RunJob starts a new execution of a job. Its operation finishes when the
// execution does; its metadata is the execution as it is now.
func (js *jobsService) RunJob(ctx context.Context, req *runpb.RunJobRequest) (*longrunningpb.Operation, error) {
	s := js.s
	name, err := parseJobName("name", req.GetName(), false)
	if err != nil {
		return nil, err
	}
	jn := name.String()
	job, err := lockChecked(s.store, s.store.jobs, "job", jn, req.GetEtag())
	if err != nil {
		return nil, err
	}
	tmpl := clone(job.Template)
	if err := applyOverrides(tmpl, req.GetOverrides()); err != nil {
		s.store.mu.Unlock()
		return nil, err
	}
	now := s.now()
	execID := name.job + "-" + randomSuffix(5)
	en := executionName{name, execID}
	parallelism := tmpl.Parallelism
	if parallelism == 0 {
		parallelism = tmpl.TaskCount
	}
	ex := &runpb.Execution{
		Name:               en.String(),
		Uid:                newUID(),
		Creator:            Principal,
		Generation:         1,
		Labels:             mergeLabels(job.Labels, tmpl.Labels),
		Annotations:        tmpl.Annotations,
		CreateTime:         ts(now),
		UpdateTime:         ts(now),
		LaunchStage:        api.LaunchStage_GA,
		Job:                name.job,
		Parallelism:        parallelism,
		TaskCount:          tmpl.TaskCount,
		Template:           tmpl.Template,
		Reconciling:        true,
		ObservedGeneration: 1,
		LogUri:             logURI(name.location, name.job, execID),
		Client:             tmpl.Client,
		ClientVersion:      tmpl.ClientVersion,
		Conditions: []*runpb.Condition{
			condition("Completed", runpb.Condition_CONDITION_PENDING, "", now),
			condition("ResourcesAvailable", runpb.Condition_CONDITION_PENDING, "", now),
			condition("Started", runpb.Condition_CONDITION_PENDING, "", now),
		},
	}
	ex.Etag = etag(ex.Name, ex.Generation, now)
	if req.GetValidateOnly() {
		s.store.mu.Unlock()
		return s.doneOperation(name.location, ex, nil), nil
	}
	for i := range int(tmpl.TaskCount) {
		t := &runpb.Task{
			Name:                 fmt.Sprintf("%s/tasks/%s-task%d", ex.Name, execID, i),
			Uid:                  newUID(),
			Generation:           1,
			Labels:               ex.Labels,
			Annotations:          ex.Annotations,
			CreateTime:           ts(now),
			UpdateTime:           ts(now),
			Job:                  name.job,
			Execution:            execID,
			Containers:           tmpl.Template.Containers,
			Volumes:              tmpl.Template.Volumes,
			MaxRetries:           tmpl.Template.GetMaxRetries(),
			Timeout:              tmpl.Template.Timeout,
			ServiceAccount:       tmpl.Template.ServiceAccount,
			ExecutionEnvironment: tmpl.Template.ExecutionEnvironment,
			EncryptionKey:        tmpl.Template.EncryptionKey,
			VpcAccess:            tmpl.Template.VpcAccess,
			NodeSelector:         tmpl.Template.NodeSelector,
			Reconciling:          true,
			ObservedGeneration:   1,
			Index:                int32(i),
			LogUri:               ex.LogUri,
			Conditions: []*runpb.Condition{
				condition("Completed", runpb.Condition_CONDITION_PENDING, "", now),
				condition("Started", runpb.Condition_CONDITION_PENDING, "", now),
			},
		}
		t.Etag = etag(t.Name, 1, now)
		s.store.tasks[t.Name] = clone(t)
	}
	s.store.executions[ex.Name] = ex
	lag := s.cfg.strict.execReconcile
	if lag > 0 {
		s.store.unrecorded[job.Uid]++
		job.Reconciling = true
	} else {
		s.recordExecutionLocked(job, ex)
	}
	jobUID := job.Uid
	run := &executionRun{stop: make(chan struct{}), done: make(chan struct{})}
	s.store.runs[ex.Name] = run
	s.store.mu.Unlock()

	run.op = s.ops.start(name.location, s.executionRefresher(ex.Name))
	if !s.goBackground(func() { s.execute(en, run) }) {
		return nil, status.Error(codes.Unavailable, "gcptest: the server is closing")
	}
	if lag > 0 {
		if err := s.after(lag, func() { s.recordExecution(jn, jobUID, ex.Name) }); err != nil {
			return nil, err
		}
	}
	if s.cfg.instantOps {
		select {
		case <-run.done:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return s.opSnapshot(run.op)
}

// recordExecution records, late, an execution RunJob started on the job
// of that uid (RuleExecutionReconcile): Cloud Run reconciles a job
// asynchronously, so execution_count and latest_created_execution change
// some time after RunJob, while the job reports reconciling.
func (s *Server) recordExecution(jobName, uid, execution string) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	job := s.store.jobs[jobName]
	if job == nil || job.Uid != uid {
		delete(s.store.unrecorded, uid)
		return
	}
	if s.store.unrecorded[uid]--; s.store.unrecorded[uid] <= 0 {
		delete(s.store.unrecorded, uid)
	}
	if ex := s.store.executions[execution]; ex != nil {
		s.recordExecutionLocked(job, ex)
	} else {
		job.ExecutionCount++
	}
	job.Reconciling = s.store.reconcilingLocked(job)
}

// recordExecutionLocked counts an execution on its job and makes it the
// latest created one, with its status as it is now, unless the job
// already records a newer one. The caller holds the store's lock.
func (s *Server) recordExecutionLocked(job *runpb.Job, ex *runpb.Execution) {
	job.ExecutionCount++
	if l := job.LatestCreatedExecution; l != nil && l.GetCreateTime().AsTime().After(ex.GetCreateTime().AsTime()) {
		return
	}
	job.LatestCreatedExecution = &runpb.ExecutionReference{
		Name:             ex.Name[strings.LastIndexByte(ex.Name, '/')+1:],
		CreateTime:       ex.CreateTime,
		CompletionTime:   ex.CompletionTime,
		CompletionStatus: completionStatus(ex),
	}
}

// completionStatus is how an ExecutionReference states an execution's
// progress: PENDING until a task has started, RUNNING, then how it ended.
func completionStatus(ex *runpb.Execution) runpb.ExecutionReference_CompletionStatus {
	switch {
	case ex.CompletionTime == nil && conditionState(ex.Conditions, "Started") == runpb.Condition_CONDITION_SUCCEEDED:
		return runpb.ExecutionReference_EXECUTION_RUNNING
	case ex.CompletionTime == nil:
		return runpb.ExecutionReference_EXECUTION_PENDING
	case ex.SucceededCount == ex.TaskCount:
		return runpb.ExecutionReference_EXECUTION_SUCCEEDED
	}
	for _, c := range ex.Conditions {
		if c.Type == "Completed" && c.GetExecutionReason() == runpb.Condition_CANCELLED {
			return runpb.ExecutionReference_EXECUTION_CANCELLED
		}
	}
	return runpb.ExecutionReference_EXECUTION_FAILED
}

func conditionState(cs []*runpb.Condition, typ string) runpb.Condition_State {
	for _, c := range cs {
		if c.Type == typ {
			return c.State
		}
	}
	return runpb.Condition_STATE_UNSPECIFIED
}

func mergeLabels(maps ...map[string]string) map[string]string {
	var m map[string]string
	for _, x := range maps {
		for k, v := range x {
			if m == nil {
				m = map[string]string{}
			}
			m[k] = v
		}
	}
	return m
}

func (s *Server) executionRefresher(name string) func() proto.Message {
	return func() proto.Message {
		s.store.mu.Lock()
		defer s.store.mu.Unlock()
		if ex := s.store.executions[name]; ex != nil {
			return clone(ex)
		}
		return nil
	}
}

// execute runs an execution's tasks, at most parallelism at a time, then
// records how it ended and finishes its operation.
func (s *Server) execute(en executionName, run *executionRun) {
	name := en.String()
	s.store.mu.Lock()
	ex := s.store.executions[name]
	now := s.now()
	ex.StartTime = ts(now)
	ex.Conditions = setCondition(ex.Conditions, condition("ResourcesAvailable", runpb.Condition_CONDITION_SUCCEEDED, "Provisioned resources required to run the execution.", now))
	taskCount, parallelism := int(ex.TaskCount), int(ex.Parallelism)
	s.store.mu.Unlock()

	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	started := 0
dispatch:
	for i := range taskCount {
		select {
		case sem <- struct{}{}:
		case <-run.stop:
			break dispatch
		case <-s.ctx.Done():
			break dispatch
		}
		if run.stopped() || s.ctx.Err() != nil {
			<-sem
			break
		}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.runTask(en, i, taskCount, run)
		}()
	}
	wg.Wait()
	s.finishExecution(en, run, started)
}

// finishExecution marks the tasks that never started as cancelled, sets
// the execution's terminal condition and finishes its operation.
func (s *Server) finishExecution(en executionName, run *executionRun, started int) {
	name := en.String()
	now := s.now()
	s.store.mu.Lock()
	ex := s.store.executions[name]
	for i := started; i < int(ex.TaskCount); i++ {
		t := s.store.tasks[fmt.Sprintf("%s/tasks/%s-task%d", name, en.execution, i)]
		t.Reconciling = false
		t.CompletionTime = ts(now)
		t.Conditions = setCondition(t.Conditions, withExecutionReason(condition("Completed", runpb.Condition_CONDITION_FAILED, "The task was cancelled before it started.", now), runpb.Condition_CANCELLED))
		ex.CancelledCount++
	}
	ex.Reconciling = false
	ex.CompletionTime = ts(now)
	ex.UpdateTime = ts(now)
	var (
		opErr      error
		completion runpb.ExecutionReference_CompletionStatus
		done       *runpb.Condition
	)
	switch {
	case ex.SucceededCount == ex.TaskCount:
		completion = runpb.ExecutionReference_EXECUTION_SUCCEEDED
		done = condition("Completed", runpb.Condition_CONDITION_SUCCEEDED, fmt.Sprintf("Execution completed successfully in %s.", now.Sub(ex.StartTime.AsTime()).Round(time.Millisecond)), now)
	case run.stopped() || s.ctx.Err() != nil:
		completion = runpb.ExecutionReference_EXECUTION_CANCELLED
		done = withExecutionReason(condition("Completed", runpb.Condition_CONDITION_FAILED, "The execution was cancelled.", now), runpb.Condition_CANCELLED)
		opErr = status.Errorf(codes.Canceled, "Execution %s was cancelled.", en.execution)
	default:
		completion = runpb.ExecutionReference_EXECUTION_FAILED
		msg := s.firstFailureLocked(name, en.execution, int(ex.TaskCount))
		done = withExecutionReason(condition("Completed", runpb.Condition_CONDITION_FAILED, msg, now), runpb.Condition_NON_ZERO_EXIT_CODE)
		opErr = status.Error(codes.FailedPrecondition, msg)
	}
	ex.Conditions = setCondition(ex.Conditions, done)
	if ex.Conditions[2].State == runpb.Condition_CONDITION_PENDING {
		ex.Conditions[2] = condition("Started", runpb.Condition_CONDITION_FAILED, "The execution was cancelled before any task started.", now)
	}
	final := clone(ex)
	if job := s.store.jobs[en.jobName.String()]; job != nil && job.LatestCreatedExecution.GetName() == en.execution {
		job.LatestCreatedExecution.CompletionTime = ts(now)
		job.LatestCreatedExecution.CompletionStatus = completion
	}
	delete(s.store.runs, name)
	s.store.mu.Unlock()
	s.ops.finish(run.op, final, opErr)
	close(run.done)
}

// firstFailureLocked describes the first failed task as Cloud Run does:
// "Task <id> failed with message: ...".
func (s *Server) firstFailureLocked(name, execID string, n int) string {
	for i := range n {
		t := s.store.tasks[fmt.Sprintf("%s/tasks/%s-task%d", name, execID, i)]
		if r := t.GetLastAttemptResult(); r != nil && r.GetStatus().GetCode() != int32(codes.OK) {
			return fmt.Sprintf("Task %s-task%d failed with message: %s", execID, i, r.GetStatus().GetMessage())
		}
	}
	return "Execution failed."
}

// runTask runs one task's attempts until one succeeds, the retries run
// out, or the execution is cancelled.
func (s *Server) runTask(en executionName, index, taskCount int, run *executionRun) {
	name := en.String()
	taskID := fmt.Sprintf("%s-task%d", en.execution, index)
	tn := name + "/tasks/" + taskID
	s.store.mu.Lock()
	t := clone(s.store.tasks[tn])
	s.store.tasks[tn].ScheduledTime = ts(s.now())
	s.store.mu.Unlock()
	maxRetries := int(t.MaxRetries)
	timeout := t.Timeout.AsDuration()

	for attempt := 0; ; attempt++ {
		plan, err := s.planAttempt(s.ctx, en, taskID, t, index, attempt, taskCount)
		if err != nil {
			// Cloud Run pulls images, reads secret environment variables
			// and makes volumes before the containers start; what it
			// cannot do keeps them from starting.
			if s.recordAttempt(en, tn, outcome{err: err, finished: s.now()}, false, attempt, maxRetries) {
				return
			}
			continue
		}
		// Tasks share this host's network: an attempt waits, scheduled,
		// until no other holds its startup-probe ports.
		if !s.ports.acquire(s.ctx, run.stop, plan.ports) {
			plan.cleanup()
			s.recordAttempt(en, tn, outcome{stopped: true, finished: s.now()}, false, attempt, maxRetries)
			return
		}
		wasStarted := false
		out := s.runAttempt(s.ctx, plan.containers, timeout, run.stop, func(at time.Time) {
			wasStarted = true
			s.store.mu.Lock()
			defer s.store.mu.Unlock()
			t := s.store.tasks[tn]
			ex := s.store.executions[name]
			t.StartTime = ts(at)
			t.Conditions = setCondition(t.Conditions, condition("Started", runpb.Condition_CONDITION_SUCCEEDED, "", at))
			t.Conditions = setCondition(t.Conditions, condition("Completed", runpb.Condition_CONDITION_RECONCILING, "", at))
			ex.RunningCount++
			if ex.Conditions[2].State != runpb.Condition_CONDITION_SUCCEEDED {
				ex.Conditions[2] = condition("Started", runpb.Condition_CONDITION_SUCCEEDED, "Started deployed execution.", at)
				if job := s.store.jobs[en.jobName.String()]; job != nil && job.LatestCreatedExecution.GetName() == en.execution {
					job.LatestCreatedExecution.CompletionStatus = runpb.ExecutionReference_EXECUTION_RUNNING
				}
			}
			if ex.Conditions[0].State == runpb.Condition_CONDITION_PENDING {
				ex.Conditions[0] = condition("Completed", runpb.Condition_CONDITION_RECONCILING, "", at)
			}
		})
		plan.cleanup()
		// The ports are free once the attempt is recorded as ended, so
		// that no two attempts that probe a port ever overlap.
		done := s.recordAttempt(en, tn, out, wasStarted, attempt, maxRetries)
		s.ports.release(plan.ports)
		if done {
			return
		}
	}
}

// recordAttempt records how an attempt ended and reports whether the task
// is finished (true) or gets another attempt (false).
func (s *Server) recordAttempt(en executionName, tn string, out outcome, wasStarted bool, attempt, maxRetries int) bool {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	t := s.store.tasks[tn]
	ex := s.store.executions[en.String()]
	if wasStarted {
		ex.RunningCount--
	}
	res := &runpb.TaskAttemptResult{}
	switch {
	case out.signal != 0:
		res.TermSignal = int32(out.signal)
	case s.cfg.strict.noExitCodeOnStop && (out.stopped || out.timedOut):
		// exit_code "may be unset if the container was unable to exit
		// cleanly": a container stopped by the system may report no
		// code, and one that exited by itself after SIGTERM reports
		// neither a code nor a signal.
	default:
		res.ExitCode = int32(out.exitCode)
	}
	var (
		code   codes.Code
		msg    string
		reason runpb.Condition_ExecutionReason
	)
	container := "The container"
	if out.container != "" {
		container = fmt.Sprintf("The container %q", out.container)
	}
	var imgErr *imageError
	switch {
	case out.stopped:
		code, msg, reason = codes.Canceled, "The task was cancelled.", runpb.Condition_CANCELLED
	case errors.As(out.err, &imgErr):
		code, msg, reason = codes.NotFound, imgErr.msg, runpb.Condition_NON_ZERO_EXIT_CODE
	case out.err != nil:
		code, msg, reason = codes.Internal, container+" could not be started: "+out.err.Error(), runpb.Condition_NON_ZERO_EXIT_CODE
	case out.timedOut:
		code, msg, reason = codes.DeadlineExceeded, "The configured timeout was reached.", runpb.Condition_NON_ZERO_EXIT_CODE
	case out.failure != "":
		code, msg, reason = codes.Unknown, out.failure, runpb.Condition_NON_ZERO_EXIT_CODE
	case out.signal != 0:
		code, msg, reason = codes.Unknown, fmt.Sprintf("%s was terminated by signal %d (%s).", container, out.signal, gantry.SignalName(out.signal)), runpb.Condition_NON_ZERO_EXIT_CODE
	case out.exitCode != 0:
		code, msg, reason = codes.Unknown, fmt.Sprintf("%s exited with an error (exit code %d).", container, out.exitCode), runpb.Condition_NON_ZERO_EXIT_CODE
	default:
		code = codes.OK
	}
	res.Status = status.New(code, msg).Proto()
	t.LastAttemptResult = res
	now := s.now()
	t.UpdateTime = ts(now)
	switch {
	case code == codes.OK:
		ex.SucceededCount++
		t.Conditions = setCondition(t.Conditions, condition("Completed", runpb.Condition_CONDITION_SUCCEEDED, "Task completed successfully.", now))
	case code == codes.Canceled:
		ex.CancelledCount++
		t.Conditions = setCondition(t.Conditions, withExecutionReason(condition("Completed", runpb.Condition_CONDITION_FAILED, msg, now), reason))
	case attempt < maxRetries:
		t.Retried++
		ex.RetriedCount++
		t.Conditions = setCondition(t.Conditions, withRetryReason(condition("Retry", runpb.Condition_CONDITION_SUCCEEDED, fmt.Sprintf("System will retry after 0:00:00 from lastTransitionTime for attempt %d.", attempt+1), now)))
		return false
	default:
		ex.FailedCount++
		t.Conditions = setCondition(t.Conditions, withExecutionReason(condition("Completed", runpb.Condition_CONDITION_FAILED, msg, now), reason))
	}
	t.Reconciling = false
	t.CompletionTime = ts(now)
	return true
}

func withRetryReason(c *runpb.Condition) *runpb.Condition {
	c.Reasons = &runpb.Condition_Reason{Reason: runpb.Condition_IMMEDIATE_RETRY}
	return c
}

// GetExecution returns an execution.
func (es *executionsService) GetExecution(_ context.Context, req *runpb.GetExecutionRequest) (*runpb.Execution, error) {
	name, err := parseExecutionName("name", req.GetName(), false)
	if err != nil {
		return nil, err
	}
	s := es.s
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if ex := s.store.executions[name.String()]; ex != nil {
		return clone(ex), nil
	}
	return nil, status.Errorf(codes.NotFound, "execution %s not found", name)
}

// ListExecutions lists the executions of a job, or of every job of the
// location when the job is "-", newest first (which Cloud Run v2 does not
// promise), or in no particular order with unordered lists.
func (es *executionsService) ListExecutions(_ context.Context, req *runpb.ListExecutionsRequest) (*runpb.ListExecutionsResponse, error) {
	parent, err := parseJobName("parent", req.GetParent(), true)
	if err != nil {
		return nil, err
	}
	s := es.s
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if parent.job != wildcard && s.store.jobs[parent.String()] == nil {
		return nil, status.Errorf(codes.NotFound, "job %s not found", parent)
	}
	prefix := parent.location.String() + "/jobs/"
	var list []*runpb.Execution
	for n, ex := range s.store.executions {
		if !strings.HasPrefix(n, prefix) || (parent.job != wildcard && ex.Job != parent.job) {
			continue
		}
		list = append(list, ex)
	}
	newestFirst := func(a, b *runpb.Execution) int {
		if c := b.CreateTime.AsTime().Compare(a.CreateTime.AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	}
	page, next, err := listPage(s, list, (*runpb.Execution).GetName, newestFirst, req.GetPageSize(), req.GetPageToken(), listKey(req.GetParent(), req.GetShowDeleted()))
	if err != nil {
		return nil, err
	}
	resp := &runpb.ListExecutionsResponse{NextPageToken: next}
	for _, ex := range page {
		resp.Executions = append(resp.Executions, clone(ex))
	}
	return resp, nil
}

// CancelExecution stops a running execution: running tasks get SIGTERM,
// then SIGKILL after the grace period; tasks not started never start.
// The operation finishes when the execution has stopped.
func (es *executionsService) CancelExecution(ctx context.Context, req *runpb.CancelExecutionRequest) (*longrunningpb.Operation, error) {
	s := es.s
	name, err := parseExecutionName("name", req.GetName(), false)
	if err != nil {
		return nil, err
	}
	n := name.String()
	ex, err := lockChecked(s.store, s.store.executions, "execution", n, req.GetEtag())
	if err != nil {
		return nil, err
	}
	run := s.store.runs[n]
	if run == nil {
		s.store.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "execution %s has already completed", n)
	}
	if req.GetValidateOnly() {
		preview := clone(ex)
		s.store.mu.Unlock()
		return s.doneOperation(name.location, preview, nil), nil
	}
	now := s.now()
	ex.Conditions = setCondition(ex.Conditions, withExecutionReason(condition("Completed", runpb.Condition_CONDITION_RECONCILING, "The execution is being cancelled.", now), runpb.Condition_CANCELLING))
	s.store.mu.Unlock()
	run.cancel()
	return s.followRun(ctx, name, run)
}

// followRun returns an operation that finishes, with the execution as
// response, once run is done.
func (s *Server) followRun(ctx context.Context, name executionName, run *executionRun) (*longrunningpb.Operation, error) {
	refresh := s.executionRefresher(name.String())
	op := s.ops.start(name.location, refresh)
	finish := func() {
		<-run.done
		s.ops.finish(op, refresh(), nil)
	}
	if s.cfg.instantOps {
		select {
		case <-run.done:
			finish()
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	} else if !s.goBackground(finish) {
		return nil, status.Error(codes.Unavailable, "gcptest: the server is closing")
	}
	return s.opSnapshot(op)
}

// DeleteExecution deletes an execution and its tasks; a running one is
// cancelled first, and the operation finishes once it is gone.
func (es *executionsService) DeleteExecution(_ context.Context, req *runpb.DeleteExecutionRequest) (*longrunningpb.Operation, error) {
	s := es.s
	name, err := parseExecutionName("name", req.GetName(), false)
	if err != nil {
		return nil, err
	}
	n := name.String()
	ex, err := lockChecked(s.store, s.store.executions, "execution", n, req.GetEtag())
	if err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		preview := clone(ex)
		s.store.mu.Unlock()
		return s.doneOperation(name.location, preview, nil), nil
	}
	run := s.store.runs[n]
	s.store.mu.Unlock()
	remove := func() *runpb.Execution {
		s.store.mu.Lock()
		defer s.store.mu.Unlock()
		ex := s.store.executions[n]
		if ex == nil {
			return nil
		}
		s.store.removeExecutionLocked(n)
		ex.DeleteTime = ts(s.now())
		ex.ExpireTime = ex.DeleteTime
		if job := s.store.jobs[name.jobName.String()]; job != nil && job.LatestCreatedExecution.GetName() == name.execution {
			job.LatestCreatedExecution.DeleteTime = ex.DeleteTime
		}
		return ex
	}
	if run == nil {
		ex := remove()
		if ex == nil {
			return nil, status.Errorf(codes.NotFound, "execution %s not found", n)
		}
		return s.doneOperation(name.location, ex, nil), nil
	}
	run.cancel()
	refresh := s.executionRefresher(n)
	op := s.ops.start(name.location, refresh)
	finish := func() {
		<-run.done
		if ex := remove(); ex != nil {
			s.ops.finish(op, ex, nil)
		} else {
			s.ops.finish(op, nil, status.Errorf(codes.NotFound, "execution %s not found", n))
		}
	}
	if s.cfg.instantOps {
		finish()
	} else if !s.goBackground(finish) {
		return nil, status.Error(codes.Unavailable, "gcptest: the server is closing")
	}
	return s.opSnapshot(op)
}
