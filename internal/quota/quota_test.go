package quota

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestClassOf(t *testing.T) {
	for method, want := range map[string]Class{
		"/google.cloud.run.v2.Jobs/GetJob":                             RunRead,
		"/google.cloud.run.v2.Executions/ListExecutions":               RunRead,
		"/google.longrunning.Operations/GetOperation":                  RunRead,
		"/google.cloud.run.v2.Jobs/CreateJob":                          RunWrite,
		"/google.cloud.run.v2.Executions/CancelExecution":              RunWrite,
		"/google.cloud.run.v2.Jobs/DeleteJob":                          RunWrite,
		"/google.cloud.run.v2.Jobs/RunJob":                             RunJobRun,
		"/google.logging.v2.LoggingServiceV2/ListLogEntries":           LogList,
		"/google.logging.v2.LoggingServiceV2/TailLogEntries":           Other,
		"/google.cloud.functions.v2.FunctionService/GetFunction":       RunRead,
		"/google.cloud.functions.v2.FunctionService/ListFunctions":     RunRead,
		"/google.cloud.functions.v2.FunctionService/ListRuntimes":      RunRead,
		"/google.cloud.functions.v2.FunctionService/CreateFunction":    RunWrite,
		"/google.cloud.functions.v2.FunctionService/DeleteFunction":    RunWrite,
		"/google.cloud.functions.v2.FunctionService/GenerateUploadUrl": RunWrite,
		"/some.other.Service/Get":                                      Other,
	} {
		if got := ClassOf(method); got != want {
			t.Errorf("ClassOf(%s) = %d, want %d", method, got, want)
		}
	}
}

func exhausted(retry time.Duration) error {
	st := status.New(codes.ResourceExhausted, "quota exceeded")
	if retry > 0 {
		st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	}
	return st.Err()
}

// TestRetryHonoursRetryInfo: a refused call is retried no sooner than the
// server's RetryInfo asks, and only the final answer reaches the caller.
func TestRetryHonoursRetryInfo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Limits{})
		var at []time.Duration
		start := time.Now()
		invoker := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			at = append(at, time.Since(start))
			if len(at) < 3 {
				return exhausted(7 * time.Second)
			}
			return nil
		}
		if err := b.unary(t.Context(), "/google.cloud.run.v2.Jobs/RunJob", nil, nil, nil, invoker); err != nil {
			t.Fatalf("unary = %v, want the third attempt's success", err)
		}
		if len(at) != 3 || at[1] < 7*time.Second || at[2]-at[1] < 7*time.Second || at[2] > 16*time.Second {
			t.Errorf("attempts at %v, want three, each at least 7s (RetryInfo) apart, jitter under a tenth", at)
		}
		if b.Exhausted() != 2 || b.Calls(RunJobRun) != 3 {
			t.Errorf("Exhausted %d, Calls %d; want 2 and 3", b.Exhausted(), b.Calls(RunJobRun))
		}
	})
}

func TestRetryGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Limits{})
		n := 0
		invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			n++
			return exhausted(0)
		}
		err := b.unary(t.Context(), "/google.cloud.run.v2.Jobs/GetJob", nil, nil, nil, invoker)
		if status.Code(err) != codes.ResourceExhausted || n != MaxRetries+1 {
			t.Errorf("after %d attempts: %v; want RESOURCE_EXHAUSTED after %d", n, err, MaxRetries+1)
		}
	})
}

func TestRetryEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Limits{})
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			return exhausted(time.Minute)
		}
		if err := b.unary(ctx, "/google.cloud.run.v2.Jobs/GetJob", nil, nil, nil, invoker); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("unary = %v, want the context's deadline", err)
		}
	})
}

// TestBudgetSpreadsRequests: 60 reads a minute with a burst of 6 let the
// first six go at once and then one a second.
func TestBudgetSpreadsRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Limits{RunReads: 60})
		start := time.Now()
		for range 16 {
			if err := b.Wait(t.Context(), RunRead); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("16 reads took %v, want 10s (6 at once, then one a second)", got)
		}
		start = time.Now()
		for range 100 {
			b.Wait(t.Context(), RunWrite)
		}
		if time.Since(start) != 0 {
			t.Errorf("writes without a limit waited %v", time.Since(start))
		}
	})
}

func TestRetryDelayBackoff(t *testing.T) {
	for attempt, lo := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 9: time.Minute} {
		d := RetryDelay(exhausted(0), attempt)
		if d < lo || d > lo+time.Second {
			t.Errorf("RetryDelay(attempt %d) = %v, want %v plus up to a second of jitter", attempt, d, lo)
		}
	}
}

func TestWaitPastDeadlineSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Limits{LogLists: 6})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		var err error
		for range 3 {
			err = b.Wait(ctx, LogList)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a wait the budget cannot grant before the deadline: %v, want context.DeadlineExceeded", err)
		}
	})
}
