package cloudrun

import (
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"google.golang.org/grpc/codes"
)

// TestResourceExhaustedIsRetried: a request refused for quota took no
// effect, so every call, RunJob and CreateJob included, is retried, and
// the container runs once with its exact exit code.
func TestResourceExhaustedIsRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("the retries back off for seconds without a RetryInfo; skipped with -short")
	}
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	srv.InjectFault(mJobsRun, gcptest.Fault{Code: codes.ResourceExhausted, NextK: 2})
	for _, m := range []string{mJobsCreate, mJobsGet, mTasksList} {
		srv.InjectFault(m, gcptest.Fault{Code: codes.ResourceExhausted, NextK: 1})
	}
	c, err := rt.Create(ctx, sh("exit 5"))
	if err != nil {
		t.Fatalf("Create through two RESOURCE_EXHAUSTED: %v", err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatalf("Start through two RESOURCE_EXHAUSTED: %v", err)
	}
	if st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil || st.ExitCode != 5 {
		t.Fatalf("Wait = %+v, %v; want exit 5", st, err)
	}
	if got := srv.Calls(mJobsRun); got != 3 {
		t.Errorf("%d RunJob calls, want 3: two refused, one that ran", got)
	}
	if j, err := rt.resolve(ctx, c.ID); err != nil || j.pb.GetExecutionCount() != 1 {
		t.Errorf("the job has %d executions (%v), want 1", j.pb.GetExecutionCount(), err)
	}
	if got := rt.budget.Exhausted(); got != 5 {
		t.Errorf("the budget met %d RESOURCE_EXHAUSTED, want 5", got)
	}
}
