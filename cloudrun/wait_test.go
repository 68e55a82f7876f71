package cloudrun

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/grpc/codes"
)

// runForeignJob makes a job gantry did not create and runs it n times to
// completion, so the region holds executions that are not gantry's.
func runForeignJob(t *testing.T, rt *Runtime, jobID string, n int) {
	t.Helper()
	ctx := testCtx(t)
	foreign := &runpb.Job{Template: &runpb.ExecutionTemplate{Template: &runpb.TaskTemplate{
		Containers: []*runpb.Container{{Image: "busybox", Command: []string{"true"}}},
	}}}
	op, err := rt.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: rt.parent, JobId: jobID, Job: foreign})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for range n {
		op, err := rt.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: rt.jobName(jobID)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// startForever creates and starts a container that runs until cancelled.
func startForever(t *testing.T, rt *Runtime) *gantry.Container {
	t.Helper()
	ctx := testCtx(t)
	c, err := rt.Create(ctx, sh(forever))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPollCostIsFlat: the poller reads the jobs, one page for the whole
// region, so a tick costs one call however long the region's history of
// executions is and in whatever order they would be listed, and a Wait
// needs no read of executions while its job shows its run.
func TestPollCostIsFlat(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	runForeignJob(t, rt, "not-gantrys", 3)
	old, err := rt.Create(ctx, sh("exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := rt.Start(ctx, old.ID); err != nil {
			t.Fatal(err)
		}
		if st, err := rt.Wait(ctx, old.ID, gantry.WaitNotRunning); err != nil || st.ExitCode != 3 {
			t.Fatalf("Wait = %+v, %v; want exit 3", st, err)
		}
	}
	c := startForever(t, rt)

	srv.ResetCalls()
	fetches := rt.poller.Fetches()
	done := make(chan error, 1)
	go func() {
		st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		if err == nil && st.ExitCode != 143 {
			err = errors.New("exit " + st.Error)
		}
		done <- err
	}()
	for rt.poller.Fetches()-fetches < 3 && ctx.Err() == nil {
		time.Sleep(testPoll)
	}
	if err := rt.Kill(ctx, c.ID, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	ticks := rt.poller.Fetches() - fetches
	if got := srv.Calls(mJobsList); int64(got) > ticks {
		t.Errorf("%d ListJobs calls in %d ticks, want at most one a tick", got, ticks)
	}
	for _, m := range []string{mExecsList, mExecsGet} {
		if got := srv.Calls(m); got != 0 {
			t.Errorf("%d calls of %s, want none", got, m)
		}
	}
}

// TestWaitWhenPollingFails: a poll that cannot succeed by waiting (no
// permission) ends every Wait with an error that says so; one that may
// (UNAVAILABLE) is ridden out, one call per tick, and named in the error
// if the caller gives up meanwhile.
func TestWaitWhenPollingFails(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	c := startForever(t, rt)

	srv.InjectFault(mJobsList, gcptest.Fault{Code: codes.PermissionDenied, Message: "run.jobs.list denied"})
	_, err := rt.Wait(ctx, c.Name, gantry.WaitNotRunning)
	var ae *apierror.APIError
	if !errors.Is(err, gantry.ErrPermissionDenied) || !errors.As(err, &ae) {
		t.Fatalf("Wait while polling is denied: %v, want ErrPermissionDenied over the APIError", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, `cloudrun: wait "`+c.Name+`": poll jobs: permission denied: `) || strings.Contains(msg, "\n") {
		t.Errorf("error %q does not say on one line what was asked and why it failed", msg)
	}

	srv.InjectFault(mJobsList, gcptest.Fault{Code: codes.Unavailable})
	srv.ResetCalls()
	fetches := rt.poller.Fetches()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := rt.Wait(wctx, c.ID, gantry.WaitNotRunning)
		done <- err
	}()
	for rt.poller.Fetches()-fetches < 3 && ctx.Err() == nil {
		time.Sleep(testPoll)
	}
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last poll failed") || !strings.Contains(err.Error(), "unavailable") {
		t.Errorf("Wait given up during an outage: %v, want context.Canceled naming the failed poll", err)
	}
	if got, ticks := srv.Calls(mJobsList), rt.poller.Fetches()-fetches; int64(got) > ticks {
		t.Errorf("%d ListJobs calls in %d ticks: the poller retries within a tick", got, ticks)
	}

	// A short outage: the Wait rides it out and returns the exact status.
	srv.InjectFault(mJobsList, gcptest.Fault{Code: codes.Unavailable, NextK: 3})
	done2 := make(chan gantry.ExitStatus, 1)
	go func() {
		st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		if err != nil {
			t.Errorf("Wait through a short outage: %v", err)
		}
		done2 <- st
	}()
	if err := rt.Kill(ctx, c.ID, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if st := <-done2; st.ExitCode != 143 || st.Signal != "SIGTERM" {
		t.Errorf("Wait through a short outage = %+v, want 143 SIGTERM", st)
	}
}

// TestRunJobIsNotRetriedBlindly: after RunJob fails with UNAVAILABLE the
// attempt may have started an execution; when the job cannot be read to
// tell, Start says so instead of running the container a second time.
func TestRunJobIsNotRetriedBlindly(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, sh("exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := rt.resolve(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	srv.InjectFault(mJobsRun, gcptest.Fault{Code: codes.Unavailable, NextK: 1})
	srv.InjectFault(mJobsGet, gcptest.Fault{Code: codes.Unavailable})
	err = rt.runJob(ctx, j)
	if !errors.Is(err, gantry.ErrUnavailable) || !strings.Contains(err.Error(), "whether the container started is unknown") {
		t.Errorf("runJob with the job unreadable: %v, want ErrUnavailable saying the outcome is unknown", err)
	}
	if got := srv.Calls(mJobsRun); got != 1 {
		t.Errorf("%d RunJob calls, want 1: a retry could run the container twice", got)
	}
	srv.ClearFaults()

	// With the job readable, an attempt that started nothing is retried
	// once, and the container runs once.
	srv.InjectFault(mJobsRun, gcptest.Fault{Code: codes.Unavailable, NextK: 1})
	if err := rt.runJob(ctx, j); err != nil {
		t.Fatalf("runJob after one UNAVAILABLE: %v", err)
	}
	got, err := rt.resolve(ctx, c.ID)
	if err != nil || got.pb.GetExecutionCount() != 1 || got.latest() == nil {
		t.Errorf("after a retried start: %d executions (%v); want one run", got.pb.GetExecutionCount(), err)
	}
}

// TestDeleteJobSparesANewJobOfTheSameName: a DeleteJob that failed with
// UNAVAILABLE may have deleted the job, and another container may have
// taken the name since; the retry must not delete that one.
func TestDeleteJobSparesANewJobOfTheSameName(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	other := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	spec := sh("exit 0")
	spec.Name = "reused"
	first, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := rt.resolve(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Remove(ctx, first.ID, gantry.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	second, err := other.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	srv.InjectFault(mJobsDelete, gcptest.Fault{Code: codes.Unavailable, NextK: 1})
	if err := rt.deleteJob(ctx, stale); err != nil {
		t.Fatalf("deleteJob after UNAVAILABLE: %v", err)
	}
	if got, err := other.Inspect(ctx, "reused"); err != nil || got.ID != second.ID {
		t.Errorf("the new container of the same name: %v, %v; want it untouched", got, err)
	}
	if got := srv.Calls(mJobsDelete); got != 2 {
		t.Errorf("%d DeleteJob calls, want 2 (the removal, the failed attempt) and no retry", got)
	}
}
