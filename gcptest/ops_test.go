package gcptest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	lroauto "cloud.google.com/go/longrunning/autogen"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gantryhq/gantry/gcptest"
)

const (
	getOperation = "/google.longrunning.Operations/GetOperation"
	runJob       = "/google.cloud.run.v2.Jobs/RunJob"
	getJob       = "/google.cloud.run.v2.Jobs/GetJob"
)

// TestOperationPolling holds a task until the test releases it, so the
// RunJob operation is observably pending: polls report it not done with
// the running execution as metadata, then done once the task exits.
func TestOperationPolling(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gate := filepath.Join(t.TempDir(), "gate")
	e.createJob(t, "gated", shJob(`while [ ! -e `+gate+` ]; do sleep 0.01; done`))
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/gated"})
	if err != nil {
		t.Fatal(err)
	}
	if op.Done() {
		t.Fatal("RunJob operation done while its task waits")
	}
	meta, _ := op.Metadata()
	e.waitRunning(t, meta.Name, 1)
	e.srv.ResetCalls()
	if _, err := op.Poll(ctx); err != nil || op.Done() {
		t.Fatalf("Poll of a pending operation: done %v, %v", op.Done(), err)
	}
	meta, err = op.Metadata()
	if err != nil || meta.RunningCount != 1 || meta.StartTime == nil {
		t.Errorf("metadata of the pending operation: %v, %v", meta, err)
	}
	if got := e.srv.Calls(getOperation); got != 1 {
		t.Errorf("Poll made %d GetOperation calls, want 1", got)
	}

	lro, err := lroauto.NewOperationsClient(ctx, e.srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer lro.Close()
	var pending []string
	it := lro.ListOperations(ctx, &longrunningpb.ListOperationsRequest{Name: parent, Filter: "done=false"})
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, o.Name)
	}
	if len(pending) != 1 || pending[0] != op.Name() {
		t.Errorf("pending operations %q, want [%s]", pending, op.Name())
	}
	w, err := lro.WaitOperation(ctx, &longrunningpb.WaitOperationRequest{Name: op.Name(), Timeout: durationpb.New(time.Millisecond)})
	if err != nil || w.Done {
		t.Errorf("WaitOperation with a short timeout: done %v, %v", w.GetDone(), err)
	}

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err = lro.WaitOperation(ctx, &longrunningpb.WaitOperationRequest{Name: op.Name()})
	if err != nil || !w.Done || w.GetError() != nil {
		t.Fatalf("WaitOperation: %v, %v", w, err)
	}
	ex, err := op.Wait(ctx)
	if err != nil || ex.SucceededCount != 1 {
		t.Fatalf("RunJob operation: %v, %v", ex, err)
	}
	if err := lro.DeleteOperation(ctx, &longrunningpb.DeleteOperationRequest{Name: op.Name()}); err != nil {
		t.Fatal(err)
	}
	if _, err := lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: op.Name()}); codeOf(err) != codes.NotFound {
		t.Errorf("GetOperation after DeleteOperation: %v, want NotFound", err)
	}
}

func TestCreateOperationIsPending(t *testing.T) {
	e := newEnv(t, gcptest.WithReconcileDelay(time.Hour))
	ctx := context.Background()
	op, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, JobId: "slowjob", Job: shJob("true")})
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: parent + "/jobs/slowjob"})
	if err != nil {
		t.Fatal(err)
	}
	if op.Done() || !j.Reconciling || j.TerminalCondition.GetState() != runpb.Condition_CONDITION_RECONCILING || j.ObservedGeneration != 0 {
		t.Errorf("job before reconciliation: done %v, %v", op.Done(), j)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	e.createJob(t, "faulty", shJob("true"))
	name := parent + "/jobs/faulty"

	e.srv.InjectFault(getJob, gcptest.Fault{Code: codes.Unavailable, NextK: 2})
	e.srv.ResetCalls()
	retry := gax.WithRetry(func() gax.Retryer {
		return gax.OnCodes([]codes.Code{codes.Unavailable}, gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond})
	})
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: name}, retry); err != nil {
		t.Fatalf("GetJob with retries through 2 faults: %v", err)
	}
	if got := e.srv.Calls(getJob); got != 3 {
		t.Errorf("GetJob calls = %d, want 3 (2 failed, 1 served)", got)
	}

	e.srv.InjectFault(runJob, gcptest.Fault{Code: codes.ResourceExhausted, EveryNth: 2})
	var got []codes.Code
	for range 4 {
		_, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: name})
		got = append(got, codeOf(err))
	}
	want := []codes.Code{codes.OK, codes.ResourceExhausted, codes.OK, codes.ResourceExhausted}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("RunJob call %d: %v, want %v", i+1, got[i], want[i])
		}
	}
	j, _ := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: name})
	if j.ExecutionCount != 2 {
		t.Errorf("execution_count %d, want 2: a failed call must change nothing", j.ExecutionCount)
	}

	e.srv.InjectFault(gcptest.AllMethods, gcptest.Fault{Code: codes.Aborted, Rate: 1})
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: name}); codeOf(err) != codes.OK {
		t.Errorf("GetJob keeps its own fault (exhausted) over AllMethods: %v", err)
	}
	it := e.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: parent})
	if _, err := it.Next(); codeOf(err) != codes.Aborted {
		t.Errorf("ListJobs under an AllMethods fault at rate 1: %v, want Aborted", err)
	}
	e.srv.ClearFaults()

	e.srv.InjectFault(getJob, gcptest.Fault{Latency: time.Hour})
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := e.jobs.GetJob(short, &runpb.GetJobRequest{Name: name}); codeOf(err) != codes.DeadlineExceeded {
		t.Errorf("GetJob under an hour of latency with a short deadline: %v, want DeadlineExceeded", err)
	}
	e.srv.ClearFaults()

	counts := e.srv.CallCounts()
	if counts[runJob] != 4 || counts[getJob] < 5 {
		t.Errorf("CallCounts = %v", counts)
	}
	e.srv.ResetCalls()
	if n := len(e.srv.CallCounts()); n != 0 {
		t.Errorf("%d methods counted after ResetCalls", n)
	}
}
