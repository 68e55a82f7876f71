package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/quota"
)

// TestLoad drives 100 containers at once through one Runtime with its
// default budget, 20 of them followed while they run, each printing 1,000
// numbered lines on each stream: every exit code must be exact, every line
// delivered once and in order on its stream, and no RESOURCE_EXHAUSTED may
// reach the caller. It reports the API calls a minute and the tail
// sessions it used. With the default budget it takes minutes by design, so
// it runs only when GANTRY_LOAD_TEST is set:
//
//	GANTRY_LOAD_TEST=1 go test -run TestLoad -v -timeout 30m ./cloudrun
func TestLoad(t *testing.T) {
	if os.Getenv("GANTRY_LOAD_TEST") == "" {
		t.Skip("set GANTRY_LOAD_TEST=1 to run the load test (minutes)")
	}
	const containers, followed, lines = 100, 20, 1000
	srv := newServer(t, loadServerOptions()...)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	// The grace covers the strict emulator's ingestion delay (up to 2 s)
	// with room for the delivery delays of a loaded machine.
	rt, err := New(ctx, Config{Project: project, Region: region, LogGrace: 2 * strictGrace}, srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	script := fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; exit $CODE`, lines)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, containers)
	for i := range containers {
		wg.Go(func() {
			if err := loadOne(ctx, rt, script, i, i < followed, lines); err != nil {
				errs <- fmt.Errorf("container %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	elapsed := time.Since(start)
	perMinute := func(n int64) float64 { return float64(n) / elapsed.Minutes() }
	b := rt.budget
	t.Logf("%d containers in %v", containers, elapsed.Round(time.Second))
	t.Logf("Cloud Run reads %.0f/min, writes %.0f/min, job runs %.0f/min; Cloud Logging entries.list %.0f/min",
		perMinute(b.Calls(quota.RunRead)), perMinute(b.Calls(quota.RunWrite)), perMinute(b.Calls(quota.RunJobRun)), perMinute(b.Calls(quota.LogList)))
	t.Logf("tail sessions opened: %d; RESOURCE_EXHAUSTED met and retried: %d", rt.tail.Sessions(), b.Exhausted())
	var methods []string
	for m, n := range srv.CallCounts() {
		methods = append(methods, fmt.Sprintf("%s %d", m[strings.LastIndexByte(m, '/')+1:], n))
	}
	t.Logf("calls by method: %s", strings.Join(methods, ", "))
}

// loadOne runs one container of TestLoad and checks its exit code and
// both streams.
func loadOne(ctx context.Context, rt *Runtime, script string, i int, follow bool, lines int) error {
	code := i % 256
	spec := sh(script)
	spec.Env = []string{fmt.Sprintf("CODE=%d", code)}
	c, err := rt.Create(ctx, spec)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer rt.Remove(context.WithoutCancel(ctx), c.ID, gantry.RemoveOptions{Force: true})
	ch, err := rt.RegisterWait(ctx, c.ID, gantry.WaitNextExit)
	if err != nil {
		return fmt.Errorf("register wait: %w", err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	// Following begins once the container runs: as Docker's, a follow of
	// a container that has not started ends at once.
	var r gantry.LogReader
	if follow {
		if r, err = rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true}); err != nil {
			return fmt.Errorf("follow: %w", err)
		}
	}
	res := <-ch
	if res.Err != nil || res.Status.ExitCode != code {
		return fmt.Errorf("wait: %+v, %v; want exit %d", res.Status, res.Err, code)
	}
	if !follow {
		if r, err = rt.Logs(ctx, c.ID, gantry.LogsOptions{}); err != nil {
			return fmt.Errorf("logs: %w", err)
		}
	}
	defer r.Close()
	next := map[gantry.Stream]int{gantry.Stdout: 1, gantry.Stderr: 1}
	prefix := map[gantry.Stream]string{gantry.Stdout: "out", gantry.Stderr: "err"}
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read logs after %d stdout and %d stderr lines: %w", next[gantry.Stdout]-1, next[gantry.Stderr]-1, err)
		}
		if want := fmt.Sprintf("%s %d", prefix[e.Stream], next[e.Stream]); e.Line != want {
			return fmt.Errorf("%s: line %q, want %q", e.Stream, e.Line, want)
		}
		next[e.Stream]++
	}
	for s, n := range next {
		if n != lines+1 {
			return fmt.Errorf("%s: %d lines, want %d", s, n-1, lines)
		}
	}
	return nil
}
