package gcptest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-cmp/cmp"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/iterator"
	ltype "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gantryhq/gantry/gcptest"
)

// manualClock is a clock a test moves by hand, for the quotas' minute.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// exhausted checks that err is Google's quota error: RESOURCE_EXHAUSTED
// with ErrorInfo naming the limit and value, QuotaFailure, Help and, when
// retry is positive, RetryInfo with that delay.
func exhausted(t *testing.T, err error, limitID string, value int, retry time.Duration) {
	t.Helper()
	ae, ok := apierror.FromError(err)
	if !ok || ae.GRPCStatus().Code() != codes.ResourceExhausted {
		t.Fatalf("error %v, want RESOURCE_EXHAUSTED", err)
	}
	d := ae.Details()
	if d.ErrorInfo.GetReason() != "RATE_LIMIT_EXCEEDED" || d.ErrorInfo.GetMetadata()["quota_limit"] != limitID || d.ErrorInfo.GetMetadata()["quota_limit_value"] != fmt.Sprint(value) {
		t.Errorf("ErrorInfo %v, want RATE_LIMIT_EXCEEDED on %s = %d", d.ErrorInfo, limitID, value)
	}
	if len(d.QuotaFailure.GetViolations()) != 1 || d.QuotaFailure.GetViolations()[0].GetQuotaId() != limitID {
		t.Errorf("QuotaFailure %v, want one violation of %s", d.QuotaFailure, limitID)
	}
	if len(d.Help.GetLinks()) == 0 {
		t.Error("no Help link to the quota page")
	}
	if got := d.RetryInfo.GetRetryDelay().AsDuration(); got != retry {
		t.Errorf("RetryInfo delay %s, want %s", got, retry)
	}
}

func TestQuotas(t *testing.T) {
	clock := &manualClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, gcptest.WithClock(clock.now), gcptest.WithInstantOperations(), gcptest.WithQuotas(gcptest.Quotas{
		RunReads: 3, RunWrites: 2, RunJobRuns: 1, LoggingEntriesLists: 2, LoggingReads: 100,
	}))
	ctx := context.Background()
	job := e.createJob(t, "q", shJob("exit 0"))
	e.createJob(t, "q2", shJob("exit 0"))
	if _, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, JobId: "q3", Job: shJob("exit 0")}); err == nil {
		t.Fatal("a third write within the minute was accepted")
	} else {
		exhausted(t, err, "WritePerMinutePerProjectRegion", 2, time.Minute)
	}

	for i := range 3 {
		if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: job.Name}); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		clock.advance(10 * time.Second)
	}
	_, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: job.Name})
	exhausted(t, err, "ReadPerMinutePerProjectRegion", 3, 30*time.Second)
	if _, err := e.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: "projects/proj/locations/europe-west1/jobs/-"}).Next(); !errors.Is(err, iterator.Done) {
		t.Errorf("a read in another region: %v, want an empty list", err)
	}
	clock.advance(30 * time.Second)
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: job.Name}); err != nil {
		t.Errorf("read once the first read left the minute: %v", err)
	}

	if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: job.Name}); err != nil {
		t.Fatal(err)
	}
	_, err = e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: job.Name})
	exhausted(t, err, "JobRunRequestsPerMinutePerProjectRegion", 1, time.Minute)

	for range 2 {
		if _, err := e.logs.ListLogEntries(ctx, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/proj"}}).Next(); err != nil && !errors.Is(err, iterator.Done) {
			t.Fatal(err)
		}
	}
	_, err = e.logs.ListLogEntries(ctx, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/proj"}}).Next()
	exhausted(t, err, "ListRequestsPerMinutePerProject", 2, time.Minute)

	st := e.srv.Stats()
	if st.Exhausted["/google.cloud.run.v2.Jobs/GetJob"] != 1 || st.Exhausted["/google.cloud.run.v2.Jobs/CreateJob"] != 1 || st.Exhausted["/google.logging.v2.LoggingServiceV2/ListLogEntries"] != 1 {
		t.Errorf("Stats.Exhausted = %v", st.Exhausted)
	}
	if st.Calls["/google.cloud.run.v2.Jobs/GetJob"] != 5 {
		t.Errorf("Stats.Calls[GetJob] = %d, want 5", st.Calls["/google.cloud.run.v2.Jobs/GetJob"])
	}
	var rows []string
	for _, q := range st.Quotas {
		rows = append(rows, fmt.Sprintf("%s %s %s/%s limit %d: %d used, %d refused, peak %d", q.Service, q.Metric, q.Project, q.Location, q.LimitValue, q.Used, q.Refused, q.PeakPerMinute))
	}
	want := []string{
		"logging.googleapis.com entries.list requests proj/ limit 2: 2 used, 1 refused, peak 2",
		"logging.googleapis.com Read requests proj/ limit 100: 2 used, 0 refused, peak 2",
		"run.googleapis.com Job run requests proj/us-central1 limit 1: 1 used, 1 refused, peak 1",
		"run.googleapis.com Read requests proj/europe-west1 limit 3: 1 used, 0 refused, peak 1",
		"run.googleapis.com Read requests proj/us-central1 limit 3: 4 used, 1 refused, peak 3",
		"run.googleapis.com Write requests proj/us-central1 limit 2: 2 used, 1 refused, peak 2",
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("quota usage (-want +got):\n%s", diff)
	}
}

// TestTailSessionsAndRate opens TailLogEntries sessions past the limit and
// tails more entries than the rate limit lets through.
func TestTailSessionsAndRate(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithQuotas(gcptest.Quotas{TailSessions: 1}), gcptest.WithTailRateLimit(4))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tail, err := e.logs.TailLogEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: []string{"projects/proj"}, BufferWindow: durationpb.New(100 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	for e.srv.Stats().Tail.Open < 1 {
		time.Sleep(time.Millisecond)
	}
	second, err := e.logs.TailLogEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: []string{"projects/proj"}}); err != nil {
		t.Fatal(err)
	}
	_, err = second.Recv()
	exhausted(t, err, "TailSessionsPerProject", 1, 0)

	e.createJob(t, "chatty", shJob(`for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; done`))
	if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/chatty"}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	suppressed := 0
	for len(lines)+suppressed < 10 {
		resp, err := tail.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, le := range resp.GetEntries() {
			lines = append(lines, le.GetTextPayload())
		}
		for _, si := range resp.GetSuppressionInfo() {
			if si.GetReason() != loggingpb.TailLogEntriesResponse_SuppressionInfo_RATE_LIMIT {
				t.Errorf("suppression_info %v, want RATE_LIMIT", si)
			}
			suppressed += int(si.GetSuppressedCount())
		}
	}
	if len(lines) != 4 || suppressed != 6 {
		t.Errorf("tailed %q and %d suppressed; want 4 lines and 6 suppressed", lines, suppressed)
	}
	st := e.srv.Stats()
	if st.Tail != (gcptest.TailUsage{Open: 1, Peak: 1, Refused: 1, RateLimited: 6}) {
		t.Errorf("Stats.Tail = %+v", st.Tail)
	}
	if st.Exhausted["/google.logging.v2.LoggingServiceV2/TailLogEntries"] != 1 {
		t.Errorf("Stats.Exhausted = %v, want the refused session", st.Exhausted)
	}
}

// TestIngestionDelay checks that a job's lines reach a tail in another
// order than they were written, and that every line is listed once they
// have all arrived.
func TestIngestionDelay(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithIngestionDelay(200*time.Millisecond, 500*time.Millisecond), gcptest.WithSeed(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tail, err := e.logs.TailLogEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: []string{"projects/proj"}, BufferWindow: durationpb.New(0)}); err != nil {
		t.Fatal(err)
	}
	for e.srv.Stats().Tail.Open < 1 {
		time.Sleep(time.Millisecond)
	}
	const n = 30
	e.createJob(t, "late", shJob(fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo $i; i=$((i+1)); done`, n)))
	if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/late"}); err != nil {
		t.Fatal(err)
	}
	if got := len(e.listLogs(t, `resource.labels.job_name="late"`)); got == n {
		t.Errorf("all %d lines listed as soon as the job ended, before any delay", got)
	}
	var arrived []string
	for len(arrived) < n {
		resp, err := tail.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, le := range resp.GetEntries() {
			arrived = append(arrived, le.GetTextPayload())
		}
	}
	var written []string
	for i := 1; i <= n; i++ {
		written = append(written, fmt.Sprint(i))
	}
	if slices.Equal(arrived, written) {
		t.Error("lines arrived in the order they were written")
	}
	var listed []string
	for _, le := range e.listLogs(t, `resource.labels.job_name="late"`) {
		listed = append(listed, le.GetTextPayload())
	}
	if diff := cmp.Diff(written, listed); diff != "" {
		t.Errorf("listed after arrival (-want +got):\n%s", diff)
	}
}

// listAll lists every execution under p with the given page size.
func (e *env) listAll(t *testing.T, p string, size int32) []string {
	t.Helper()
	var names []string
	it := e.execs.ListExecutions(context.Background(), &runpb.ListExecutionsRequest{Parent: p, PageSize: size})
	for {
		ex, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ex.Name)
	}
}

func TestUnorderedLists(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithUnorderedLists(), gcptest.WithSeed(3))
	ctx := context.Background()
	e.createJob(t, "many", shJob("exit 0"))
	for range 7 {
		if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/many"}); err != nil {
			t.Fatal(err)
		}
	}
	orders := map[string]bool{}
	var first []string
	for i := range 8 {
		names := e.listAll(t, parent+"/jobs/many", 3)
		sorted := slices.Sorted(slices.Values(names))
		if len(slices.Compact(sorted)) != 7 {
			t.Fatalf("listing %d: %d executions, want each of 7 once: %v", i, len(names), names)
		}
		if first == nil {
			first = sorted
		} else if !slices.Equal(first, sorted) {
			t.Fatalf("listings hold different executions: %v and %v", first, sorted)
		}
		orders[strings.Join(names, ",")] = true
	}
	if len(orders) < 2 {
		t.Error("eight listings came in one order")
	}

	// A page token stays good while executions are added: those that
	// existed throughout appear once.
	it := e.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: parent + "/jobs/-", PageSize: 2})
	seen := map[string]int{}
	for i := 0; ; i++ {
		ex, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[ex.Name]++
		if i == 2 {
			if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/many"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range first {
		if seen[n] != 1 {
			t.Errorf("execution %s listed %d times across pages, want once", n, seen[n])
		}
	}

	var tasks []string
	tit := e.tasks.ListTasks(ctx, &runpb.ListTasksRequest{Parent: parent + "/jobs/-/executions/-", PageSize: 3})
	for {
		task, err := tit.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task.Name)
	}
	if n := len(slices.Compact(slices.Sorted(slices.Values(tasks)))); n != 8 || len(tasks) != 8 {
		t.Errorf("ListTasks across executions: %d tasks (%d distinct), want 8", len(tasks), n)
	}
}

func TestUnorderedListsRejectsForeignTokens(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithUnorderedLists())
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		e.createJob(t, id, shJob("exit 0"))
	}
	it := e.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: parent, PageSize: 1})
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	token := it.PageInfo().Token
	if token == "" {
		t.Fatal("no next page token")
	}
	_, err := e.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: "projects/proj/locations/europe-west1", PageToken: token}).Next()
	if codeOf(err) != codes.InvalidArgument {
		t.Errorf("token for another parent: %v, want InvalidArgument", err)
	}
	_, err = e.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: parent, PageToken: token, ShowDeleted: true}).Next()
	if codeOf(err) != codes.InvalidArgument {
		t.Errorf("token with show_deleted changed: %v, want InvalidArgument", err)
	}
}

func TestExecutionReconcileDelay(t *testing.T) {
	const lag = 300 * time.Millisecond
	e := newEnv(t, gcptest.WithExecutionReconcileDelay(lag))
	ctx := context.Background()
	j := e.createJob(t, "lagging", shJob("exit 0"))
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: j.Name})
	if err != nil {
		t.Fatal(err)
	}
	// The operation names its execution from its first response.
	meta, err := op.Metadata()
	if err != nil || meta == nil || !strings.HasPrefix(meta.GetName(), j.Name+"/executions/lagging-") {
		t.Fatalf("RunJob operation metadata %v, %v; want the execution", meta, err)
	}
	started := time.Now()
	got, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.Name})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(started) < lag && (got.ExecutionCount != 0 || got.LatestCreatedExecution != nil || !got.Reconciling) {
		t.Errorf("right after RunJob: execution_count %d, latest %v, reconciling %v; want 0, none, true", got.ExecutionCount, got.LatestCreatedExecution, got.Reconciling)
	}
	if _, err := pollRun(t, op); err != nil {
		t.Fatal(err)
	}
	for got.Reconciling {
		time.Sleep(10 * time.Millisecond)
		if got, err = e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.Name}); err != nil {
			t.Fatal(err)
		}
	}
	if time.Since(started) < lag-50*time.Millisecond {
		t.Errorf("the job stopped reconciling after %s, before the delay of %s", time.Since(started), lag)
	}
	l := got.LatestCreatedExecution
	if got.ExecutionCount != 1 || !strings.HasSuffix(meta.GetName(), "/"+l.GetName()) || l.GetCompletionStatus() != runpb.ExecutionReference_EXECUTION_SUCCEEDED {
		t.Errorf("after the delay: execution_count %d, latest %v; want 1 and %s SUCCEEDED", got.ExecutionCount, l, meta.GetName())
	}
	if got.ObservedGeneration != got.Generation {
		t.Errorf("observed_generation %d, generation %d: a run changed the job's generation", got.ObservedGeneration, got.Generation)
	}
}

func TestNoExitCodeOnStop(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprint("strict=", strict), func(t *testing.T) {
			t.Parallel()
			testExitCodeOnStop(t, strict)
		})
	}
}

func testExitCodeOnStop(t *testing.T, strict bool) {
	opts := []gcptest.Option{gcptest.WithStopGracePeriod(2 * time.Second)}
	if strict {
		opts = append(opts, gcptest.WithNoExitCodeOnStop())
	}
	e := newEnv(t, opts...)
	ctx := context.Background()
	// "polite" exits by itself with 3 when told to stop, so only a strict
	// server leaves both exit_code and term_signal unset; SIGTERM kills
	// "sleeps"; "fails" ends by itself.
	scripts := map[string]string{
		"polite": `trap 'exit 3' TERM; while :; do sleep 0.05; done`,
		"sleeps": "sleep 60",
		"fails":  "exit 4",
	}
	ops := map[string]*run.RunJobOperation{}
	for id, script := range scripts {
		e.createJob(t, id, shJob(script))
		op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/" + id, Overrides: &runpb.RunJobRequest_Overrides{Timeout: durationpb.New(time.Second)}})
		if err != nil {
			t.Fatal(err)
		}
		ops[id] = op
	}
	result := func(id string) *runpb.TaskAttemptResult {
		pollRun(t, ops[id])
		meta, err := ops[id].Metadata()
		if err != nil {
			t.Fatal(err)
		}
		return e.listTasks(t, meta.Name)[0].GetLastAttemptResult()
	}
	wantCode := int32(3)
	if strict {
		wantCode = 0
	}
	if r := result("polite"); r.GetExitCode() != wantCode || r.GetTermSignal() != 0 || codes.Code(r.GetStatus().GetCode()) != codes.DeadlineExceeded {
		t.Errorf("timed out and exited 3: result %v, want exit_code %d, no signal, DEADLINE_EXCEEDED", r, wantCode)
	}
	if r := result("sleeps"); r.GetExitCode() != 0 || r.GetTermSignal() != 15 {
		t.Errorf("timed out and killed by SIGTERM: result %v, want term_signal 15 only", r)
	}
	if r := result("fails"); r.GetExitCode() != 4 {
		t.Errorf("exited 4 by itself: result %v, want exit_code 4", r)
	}
}

func TestStructuredLogs(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithStructuredLogs())
	lines := []string{
		`{"severity":"warn","message":"disk low","free":12.5,"logging.googleapis.com/labels":{"team":"infra","run.googleapis.com/task_index":"9"},"logging.googleapis.com/trace":"projects/proj/traces/abc","logging.googleapis.com/spanId":"0001","logging.googleapis.com/trace_sampled":true,"logging.googleapis.com/insertId":"mine-1","time":"2024-05-01T10:00:00.5Z"}`,
		`{"message":"request","httpRequest":{"requestMethod":"GET","status":204,"latency":"0.25s"},"logging.googleapis.com/sourceLocation":{"file":"main.go","line":"42","function":"main"},"timestamp":{"seconds":1714557600,"nanos":7}}`,
		`{"severity":"LOUD","timestampSeconds":1714557601,"timestampNanos":5,"nested":{"a":[1,"b",null]}}`,
		`[1,2,3]`,
		`{"not": "closed"`,
		`plain text`,
	}
	script := ""
	for _, l := range lines {
		script += "echo '" + l + "'; "
	}
	e.createJob(t, "structured", shJob(script))
	_, _, opErr := e.runToEnd(t, "structured", nil)
	if opErr != nil {
		t.Fatal(opErr)
	}
	got := map[string]*loggingpb.LogEntry{}
	for _, le := range e.listLogs(t, `resource.labels.job_name="structured"`) {
		key := le.GetTextPayload()
		if p := le.GetJsonPayload(); p != nil {
			key = fmt.Sprint(p.GetFields()["message"].GetStringValue(), "|", p.GetFields()["severity"].GetStringValue())
		}
		got[key] = le
	}
	if len(got) != len(lines) {
		t.Fatalf("got %d entries, want %d: %v", len(got), len(lines), got)
	}
	warn := got["disk low|"]
	if warn == nil {
		t.Fatalf("no jsonPayload entry for the first line: %v", got)
	}
	if warn.Severity != ltype.LogSeverity_WARNING || warn.Trace != "projects/proj/traces/abc" || warn.SpanId != "0001" || !warn.TraceSampled || warn.InsertId != "mine-1" ||
		!warn.Timestamp.AsTime().Equal(time.Date(2024, 5, 1, 10, 0, 0, 5e8, time.UTC)) {
		t.Errorf("first line's entry: %v", warn)
	}
	if warn.Labels["team"] != "infra" || warn.Labels["run.googleapis.com/task_index"] != "0" {
		t.Errorf("labels %v: want team=infra added and Cloud Run's task_index kept", warn.Labels)
	}
	if diff := cmp.Diff([]string{"free", "message"}, slices.Sorted(maps.Keys(warn.GetJsonPayload().AsMap()))); diff != "" {
		t.Errorf("jsonPayload keys after lifting (-want +got):\n%s", diff)
	}
	req := got["request|"]
	if req.GetHttpRequest().GetRequestMethod() != "GET" || req.GetHttpRequest().GetStatus() != 204 || req.GetHttpRequest().GetLatency().AsDuration() != 250*time.Millisecond ||
		req.GetSourceLocation().GetLine() != 42 || !req.Timestamp.AsTime().Equal(time.Unix(1714557600, 7)) || len(req.GetJsonPayload().GetFields()) != 1 {
		t.Errorf("second line's entry: %v", req)
	}
	loud := got["|LOUD"]
	if loud.Severity != ltype.LogSeverity_DEFAULT || !loud.Timestamp.AsTime().Equal(time.Unix(1714557601, 5)) || loud.GetJsonPayload().GetFields()["nested"] == nil {
		t.Errorf("third line's entry (unknown severity kept in the payload): %v", loud)
	}
	for _, text := range []string{`[1,2,3]`, `{"not": "closed"`, `plain text`} {
		if got[text] == nil {
			t.Errorf("line %q is not a textPayload entry", text)
		}
	}
}

func TestProjectNumber(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithProjectNumber("proj", "123"), gcptest.WithQuotas(gcptest.Quotas{RunJobRuns: 1}))
	ctx := context.Background()
	op, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: "projects/123/locations/us-central1", JobId: "numbered", Job: shJob("echo by-number")})
	if err != nil {
		t.Fatal(err)
	}
	j, err := op.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j.Name != parent+"/jobs/numbered" {
		t.Errorf("job created under projects/123 is named %s, want it under the project ID", j.Name)
	}
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: "projects/123/locations/us-central1/jobs/numbered"}); err != nil {
		t.Errorf("GetJob by number: %v", err)
	}
	if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/numbered"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: "projects/123/locations/us-central1/jobs/numbered"})
	var ae *apierror.APIError
	if !errors.As(err, &ae) || !strings.Contains(ae.GRPCStatus().Message(), "project_number:123") {
		t.Errorf("second run, by number, past a quota of 1: %v; want one quota for the project, its consumer named by number", err)
	}
	it := e.logs.ListLogEntries(ctx, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/123"}, Filter: `resource.labels.job_name="numbered"`})
	le, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	if le.LogName != "projects/proj/logs/run.googleapis.com%2Fstdout" || le.GetTextPayload() != "by-number" {
		t.Errorf("entry listed under projects/123: %s %q, want the log name with the project ID", le.LogName, le.GetTextPayload())
	}
}

// TestStrict runs a job on a Server with every rule on (delays shortened)
// and checks that Relax and Relaxed turn rules off.
func TestStrict(t *testing.T) {
	ctx := context.Background()
	fast := []gcptest.Option{gcptest.WithIngestionDelay(time.Millisecond, 20*time.Millisecond), gcptest.WithExecutionReconcileDelay(20 * time.Millisecond)}
	for _, tc := range []struct {
		name       string
		opts       []gcptest.Option
		structured bool
	}{
		{"strict", append([]gcptest.Option{gcptest.WithStrict()}, fast...), true},
		{"strict but text lines", append([]gcptest.Option{gcptest.WithStrict(), gcptest.Relax(gcptest.RuleStructuredLogs)}, fast...), false},
		{"relaxed", []gcptest.Option{gcptest.WithStrict(), gcptest.Relaxed()}, false},
	} {
		e := newEnv(t, append(tc.opts, gcptest.WithInstantOperations())...)
		e.createJob(t, "bundle", shJob(`echo '{"message":"hi"}'`))
		if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/bundle"}); err != nil {
			t.Fatal(err)
		}
		var entries []*loggingpb.LogEntry
		// Slowly: entries.list allows 60 calls a minute.
		for deadline := time.Now().Add(5 * time.Second); len(entries) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			entries = e.listLogs(t, `resource.labels.job_name="bundle"`)
		}
		if len(entries) != 1 || (entries[0].GetJsonPayload() != nil) != tc.structured {
			t.Errorf("%s: entries %v, want one, structured %v", tc.name, entries, tc.structured)
		}
		q := e.srv.Stats().Quotas
		limited := slices.ContainsFunc(q, func(u gcptest.QuotaUsage) bool { return u.LimitValue > 0 })
		if limited != (tc.name != "relaxed") {
			t.Errorf("%s: quota limits in force %v; usage %+v", tc.name, limited, q)
		}
	}
	if _, err := gcptest.NewServer(gcptest.Relax("no-such-rule")); err == nil {
		t.Error("Relax of an unknown rule was accepted")
	}
	for _, r := range gcptest.Rules() {
		if got, err := gcptest.ParseRule(string(r)); err != nil || got != r {
			t.Errorf("ParseRule(%q) = %q, %v", r, got, err)
		}
	}
}
