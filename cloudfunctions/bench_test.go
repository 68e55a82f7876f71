package cloudfunctions

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// BenchmarkLifecycleCalls counts the API calls of one short container's
// whole life (create, start, wait, logs, remove), operation polls apart,
// on the emulator with operations that take a millisecond.
func BenchmarkLifecycleCalls(b *testing.B) {
	srv := newServer(b)
	var invocations atomic.Int64
	rt := newRuntime(b, srv, Config{HTTPClient: &http.Client{Transport: counting{&invocations}}})
	ctx := context.Background()
	var calls, polls int
	for b.Loop() {
		srv.ResetCalls()
		c, err := rt.Create(ctx, spec("echo hello"))
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
		if st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil || st.ExitCode != 0 {
			b.Fatalf("Wait = %+v, %v", st, err)
		}
		r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := gantry.CopyLogs(io.Discard, io.Discard, r); err != nil {
			b.Fatal(err)
		}
		if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
			b.Fatal(err)
		}
		for m, n := range srv.CallCounts() {
			if strings.HasPrefix(m, "/google.longrunning.") {
				polls += n
			} else {
				calls += n
			}
		}
	}
	b.ReportMetric(float64(calls)/float64(b.N), "calls/lifecycle")
	b.ReportMetric(float64(polls)/float64(b.N), "polls/lifecycle")
	b.ReportMetric(float64(invocations.Load())/float64(b.N), "invocations/lifecycle")
}

// counting counts the requests to the functions' URLs.
type counting struct{ n *atomic.Int64 }

func (c counting) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

// BenchmarkInvokeToWait measures, on a created container, the time from
// Start to Wait returning for a command that exits at once: the overhead
// of a run through the function's URL and the runner.
func BenchmarkInvokeToWait(b *testing.B) {
	srv := newServer(b)
	rt := newRuntime(b, srv, Config{})
	ctx := context.Background()
	c, err := rt.Create(ctx, spec("exit 0"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := rt.Start(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCancel measures the time from Stop (timeout 0: SIGKILL at once)
// to its return, on a running container whose command would run for
// minutes: the cancel latency.
func BenchmarkCancel(b *testing.B) {
	srv := newServer(b)
	rt := newRuntime(b, srv, Config{})
	ctx := context.Background()
	c, err := rt.Create(ctx, spec("sleep 600"))
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		if err := rt.Start(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		began := time.Now()
		if err := rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: new(time.Duration)}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(began)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/stop")
}
