package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
)

// polls are the calls that only wait for something (operation and state
// polls), which the lifecycle count leaves out, as the target does.
var polls = map[string]bool{mOpsGet: true, mJobsList: true}

// BenchmarkLifecycleCalls counts the API calls of one short container's
// whole life: create, start, wait, logs, remove.
func BenchmarkLifecycleCalls(b *testing.B) {
	srv := newServer(b)
	rt := newRuntime(b, srv, Config{})
	ctx := context.Background()
	var calls, pollCalls int
	for b.Loop() {
		srv.ResetCalls()
		c, err := rt.Create(ctx, sh("echo hello"))
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
			if polls[m] {
				pollCalls += n
			} else {
				calls += n
			}
		}
	}
	b.ReportMetric(float64(calls)/float64(b.N), "calls/lifecycle")
	b.ReportMetric(float64(pollCalls)/float64(b.N), "polls/lifecycle")
}

// BenchmarkWaitReads measures the API reads per second while 1, 10 and
// 100 containers are being waited on, at the default poll interval.
func BenchmarkWaitReads(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("waiters=%d", n), func(b *testing.B) {
			srv := newServer(b)
			rt := newRuntime(b, srv, Config{PollInterval: DefaultPollInterval})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ids := make([]string, n)
			for i := range ids {
				c, err := rt.Create(ctx, sh("sleep 600"))
				if err != nil {
					b.Fatal(err)
				}
				if err := rt.Start(ctx, c.ID); err != nil {
					b.Fatal(err)
				}
				ids[i] = c.ID
			}
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Go(func() { rt.Wait(ctx, id, gantry.WaitNotRunning) })
			}
			// Let every Wait make its one GetJob and join the poller.
			for srv.Calls(mJobsGet) < 2*n {
				time.Sleep(10 * time.Millisecond)
			}
			const ticks = 6
			var reads int
			var elapsed time.Duration
			for b.Loop() {
				srv.ResetCalls()
				start, from := time.Now(), rt.poller.Fetches()
				for rt.poller.Fetches() < from+ticks {
					time.Sleep(10 * time.Millisecond)
				}
				elapsed += time.Since(start)
				for _, c := range srv.CallCounts() {
					reads += c
				}
			}
			b.ReportMetric(float64(reads)/elapsed.Seconds(), "reads/s")
			b.StopTimer()
			cancel()
			wg.Wait()
			for _, id := range ids {
				rt.Remove(context.Background(), id, gantry.RemoveOptions{Force: true})
			}
		})
	}
}

// BenchmarkExitToWait measures the time from a container's exit (the
// execution's completion time) to Wait returning, at the default poll
// interval; it reports the median.
func BenchmarkExitToWait(b *testing.B) {
	srv := newServer(b)
	rt := newRuntime(b, srv, Config{PollInterval: DefaultPollInterval})
	ctx := context.Background()
	var lat []time.Duration
	for b.Loop() {
		c, err := rt.Create(ctx, sh("sleep 0.3; exit 3"))
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
		st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		returned := time.Now()
		if err != nil || st.ExitCode != 3 {
			b.Fatalf("Wait = %+v, %v", st, err)
		}
		got, err := rt.Inspect(ctx, c.ID)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, returned.Sub(got.State.FinishedAt))
		rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
}

// BenchmarkLogs measures log lines per second through Logs for a
// container that wrote 100,000 lines (read after it exited).
func BenchmarkLogs(b *testing.B) {
	const n = 100000
	srv := newServer(b, gcptest.WithInstantOperations())
	rt := newRuntime(b, srv, Config{})
	ctx := context.Background()
	c, err := rt.Create(ctx, sh(fmt.Sprintf("seq 1 %d", n)))
	if err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
		b.Fatal(err)
	}
	var lines int
	var bytes int64
	b.ResetTimer()
	for b.Loop() {
		r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			e, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got++
			bytes += int64(len(e.Line) + 1)
		}
		if got != n {
			b.Fatalf("read %d lines, want %d", got, n)
		}
		lines += got
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	b.SetBytes(bytes / int64(b.N))
}

// BenchmarkAgentStart measures what the agent adds to a short container's
// run on the emulator: Create, Start and Wait of `echo hello` without and
// with the agent (the sidecar copying the agent into the in-memory volume,
// its startup probe, the user's container starting after it), and with
// the agent the time from Start to the first exec's answer through the
// relay.
func BenchmarkAgentStart(b *testing.B) {
	w := newAgentWorld(b)
	for _, withAgent := range []bool{false, true} {
		b.Run(fmt.Sprintf("agent=%v", withAgent), func(b *testing.B) {
			cfg := Config{}
			if withAgent {
				a := w.agent
				cfg.Agent = &a
			}
			rt := newRuntime(b, w.srv, cfg)
			ctx := context.Background()
			for b.Loop() {
				c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"echo", "hello"}})
				if err != nil {
					b.Fatal(err)
				}
				if err := rt.Start(ctx, c.ID); err != nil {
					b.Fatal(err)
				}
				if st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil || st.ExitCode != 0 {
					b.Fatalf("Wait = %+v, %v", st, err)
				}
				if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("start-to-exec", func(b *testing.B) {
		a := w.agent
		rt := newRuntime(b, w.srv, Config{Agent: &a})
		ctx := context.Background()
		for b.Loop() {
			c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"sh", "-c", forever}})
			if err != nil {
				b.Fatal(err)
			}
			if err := rt.Start(ctx, c.ID); err != nil {
				b.Fatal(err)
			}
			if res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
				b.Fatalf("Exec = %+v, %v", res, err)
			}
			b.StopTimer()
			if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("exec-round-trip", func(b *testing.B) {
		a := w.agent
		rt := newRuntime(b, w.srv, Config{Agent: &a})
		ctx := context.Background()
		c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"sh", "-c", forever}})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true})
		if err := rt.Start(ctx, c.ID); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
				b.Fatalf("Exec = %+v, %v", res, err)
			}
		}
	})
}
