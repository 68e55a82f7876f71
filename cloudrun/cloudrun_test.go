package cloudrun

import (
	"context"
	"errors"
	"github.com/gantryhq/gantry/internal/naming"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/google/go-cmp/cmp"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/grpc/codes"
)

const (
	mJobsCreate   = "/google.cloud.run.v2.Jobs/CreateJob"
	mJobsGet      = "/google.cloud.run.v2.Jobs/GetJob"
	mJobsList     = "/google.cloud.run.v2.Jobs/ListJobs"
	mJobsRun      = "/google.cloud.run.v2.Jobs/RunJob"
	mJobsDelete   = "/google.cloud.run.v2.Jobs/DeleteJob"
	mExecsList    = "/google.cloud.run.v2.Executions/ListExecutions"
	mExecsGet     = "/google.cloud.run.v2.Executions/GetExecution"
	mExecsCancel  = "/google.cloud.run.v2.Executions/CancelExecution"
	mTasksList    = "/google.cloud.run.v2.Tasks/ListTasks"
	mLogsList     = "/google.logging.v2.LoggingServiceV2/ListLogEntries"
	mLogsTail     = "/google.logging.v2.LoggingServiceV2/TailLogEntries"
	mOpsGet       = "/google.longrunning.Operations/GetOperation"
	twoStreams    = "echo to-stdout; echo to-stderr >&2; exit 42"
	forever       = "while :; do sleep 0.1; done"
	defaultBudget = 30 * time.Second
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), defaultBudget)
	t.Cleanup(cancel)
	return ctx
}

func sh(script string) gantry.Spec {
	return gantry.Spec{Image: "busybox", Entrypoint: []string{"sh", "-c"}, Cmd: []string{script}}
}

func readAll(t *testing.T, rt gantry.Runtime, id string, opts gantry.LogsOptions) []gantry.LogEntry {
	t.Helper()
	r, err := rt.Logs(testCtx(t), id, opts)
	if err != nil {
		t.Fatalf("Logs(%s): %v", id, err)
	}
	defer r.Close()
	var out []gantry.LogEntry
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Logs(%s).Next: %v", id, err)
		}
		out = append(out, e)
	}
}

type line struct {
	Stream gantry.Stream
	Line   string
}

// byStream returns the lines of each stream in order: the order between
// two streams is not defined (two pipes, read apart), within one it is.
func byStream(es []gantry.LogEntry) map[gantry.Stream][]string {
	out := map[gantry.Stream][]string{}
	for _, e := range es {
		out[e.Stream] = append(out[e.Stream], e.Line)
	}
	return out
}

func lines(es []gantry.LogEntry) []line {
	out := make([]line, len(es))
	for i, e := range es {
		out[i] = line{e.Stream, e.Line}
	}
	return out
}

// TestExit42BothStreamsSurvivesRestart is the acceptance test: a
// container that prints to both streams and exits 42 reads back 42 and
// both lines on the right streams, from the Runtime that made it and from
// a new one, which also lists, waits on and removes it.
func TestExit42BothStreamsSurvivesRestart(t *testing.T) {
	srv := newServer(t)
	ctx := testCtx(t)
	first := newRuntime(t, srv, Config{})
	spec := sh(twoStreams)
	spec.Name = "both-streams"
	spec.Labels = map[string]string{"Team": "Infra", "suite": "restart"}
	c, err := first.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	st, err := first.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil || st != (gantry.ExitStatus{ExitCode: 42}) {
		t.Fatalf("Wait = %+v, %v; want exit 42", st, err)
	}
	want := map[gantry.Stream][]string{gantry.Stdout: {"to-stdout"}, gantry.Stderr: {"to-stderr"}}
	if diff := cmp.Diff(want, byStream(readAll(t, first, c.ID, gantry.LogsOptions{}))); diff != "" {
		t.Errorf("logs from the first Runtime (-want +got):\n%s", diff)
	}
	before, err := first.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := newRuntime(t, srv, Config{})
	for _, key := range []string{c.ID, c.Name, c.ID[:12]} {
		got, err := second.Inspect(ctx, key)
		if err != nil {
			t.Fatalf("new Runtime: Inspect(%q): %v", key, err)
		}
		if diff := cmp.Diff(before, got); diff != "" {
			t.Errorf("new Runtime: Inspect(%q) differs (-first +second):\n%s", key, diff)
		}
	}
	if before.State.ExitCode != 42 || before.State.Status != gantry.StatusExited || before.Spec.Labels["Team"] != "Infra" {
		t.Errorf("inspected state %+v labels %v, want exited 42 with the user's labels", before.State, before.Spec.Labels)
	}
	listed, err := second.List(ctx, gantry.ListOptions{All: true, Labels: []string{"suite=restart"}})
	if err != nil || len(listed) != 1 || listed[0].ID != c.ID {
		t.Fatalf("new Runtime: List = %v, %v; want just %s", listed, err, c.ID)
	}
	st, err = second.Wait(ctx, c.Name, gantry.WaitNotRunning)
	if err != nil || st.ExitCode != 42 {
		t.Errorf("new Runtime: Wait = %+v, %v; want 42", st, err)
	}
	if diff := cmp.Diff(want, byStream(readAll(t, second, c.ID, gantry.LogsOptions{}))); diff != "" {
		t.Errorf("logs from a new Runtime (-want +got):\n%s", diff)
	}
	wantErr := map[gantry.Stream][]string{gantry.Stderr: {"to-stderr"}}
	if diff := cmp.Diff(wantErr, byStream(readAll(t, second, c.ID, gantry.LogsOptions{Stderr: true}))); diff != "" {
		t.Errorf("stderr alone (-want +got):\n%s", diff)
	}
	if err := second.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Inspect(ctx, c.ID); !errors.Is(err, gantry.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
}

// TestInvalidSpecMakesNoCalls: a spec that is malformed, or that Cloud Run
// jobs cannot honour, fails with the right class before any API call.
func TestInvalidSpecMakesNoCalls(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	base := sh("exit 0")
	for _, tc := range []struct {
		name string
		edit func(*gantry.Spec)
		want error
	}{
		{"no image", func(s *gantry.Spec) { s.Image = "" }, gantry.ErrInvalidArgument},
		{"bad name", func(s *gantry.Spec) { s.Name = "-x" }, gantry.ErrInvalidArgument},
		{"user", func(s *gantry.Spec) { s.User = "1000" }, gantry.ErrNotSupported},
		{"ports", func(s *gantry.Spec) { s.Ports = []gantry.Port{{Port: 80}} }, gantry.ErrNotSupported},
		{"healthcheck", func(s *gantry.Spec) { s.Healthcheck = &gantry.Healthcheck{TCPPort: 80} }, gantry.ErrNotSupported},
		{"tty", func(s *gantry.Spec) { s.Tty = true }, gantry.ErrNotSupported},
		{"stdin", func(s *gantry.Spec) { s.OpenStdin = true }, gantry.ErrNotSupported},
		{"sidecar", func(s *gantry.Spec) {
			s.Sidecars = []gantry.Sidecar{{Name: "side", Image: "busybox"}}
		}, gantry.ErrNotSupported},
		{"stop signal", func(s *gantry.Spec) { s.StopSignal = "SIGUSR1" }, gantry.ErrNotSupported},
		{"bind mount", func(s *gantry.Spec) {
			s.Mounts = []gantry.Mount{{Type: gantry.MountBind, Source: "/tmp", Target: "/data"}}
		}, gantry.ErrNotSupported},
		{"named volume", func(s *gantry.Spec) {
			s.Mounts = []gantry.Mount{{Type: gantry.MountVolume, Source: "v", Target: "/data"}}
		}, gantry.ErrNotSupported},
		{"read-only tmpfs", func(s *gantry.Spec) {
			s.Mounts = []gantry.Mount{{Type: gantry.MountTmpfs, Target: "/data", ReadOnly: true}}
		}, gantry.ErrNotSupported},
		{"two GPUs", func(s *gantry.Spec) { s.Resources = gantry.Resources{GPUs: 2} }, gantry.ErrNotSupported},
		{"3 CPUs", func(s *gantry.Spec) { s.Resources.CPU = 3 }, gantry.ErrInvalidArgument},
		{"too little memory", func(s *gantry.Spec) { s.Resources.MemoryBytes = 128 << 20 }, gantry.ErrInvalidArgument},
		{"GPU with 1 CPU", func(s *gantry.Spec) { s.Resources = gantry.Resources{GPUs: 1, CPU: 1} }, gantry.ErrInvalidArgument},
		{"timeout over 168h", func(s *gantry.Spec) { s.Timeout = 169 * time.Hour }, gantry.ErrInvalidArgument},
		{"secret file at /", func(s *gantry.Spec) { s.Secrets = []gantry.Secret{{Name: "s", Path: "/s"}} }, gantry.ErrNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCalls()
			spec := base
			tc.edit(&spec)
			c, err := rt.Create(ctx, spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Create = %v, %v; want %v", c, err, tc.want)
			}
			if calls := srv.CallCounts(); len(calls) != 0 {
				t.Errorf("a refused spec made API calls: %v", calls)
			}
		})
	}
}

// TestCallsPerOperation pins the exact calls each operation makes, with
// instant operations (so no operation polls), so a change that adds calls
// is seen.
func TestCallsPerOperation(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	step := func(name string, want map[string]int, f func() error) {
		t.Helper()
		srv.ResetCalls()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, srv.CallCounts()); diff != "" {
			t.Errorf("%s: calls (-want +got):\n%s", name, diff)
		}
	}
	var c *gantry.Container
	step("create", map[string]int{mJobsCreate: 1}, func() (err error) {
		c, err = rt.Create(ctx, sh(twoStreams))
		return err
	})
	// With instant operations RunJob returns once the execution is over.
	step("start", map[string]int{mJobsGet: 1, mJobsRun: 1}, func() error { return rt.Start(ctx, c.ID) })
	step("wait (exited, failed)", map[string]int{mJobsGet: 1, mTasksList: 1}, func() error {
		_, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		return err
	})
	// A finished execution's exit status never changes: the Runtime read
	// the task once, in Wait, and remembers it.
	step("inspect", map[string]int{mJobsGet: 1}, func() error {
		_, err := rt.Inspect(ctx, c.ID)
		return err
	})
	var all []gantry.LogEntry
	step("logs", map[string]int{mJobsGet: 1, mLogsList: 1}, func() error {
		all = readAll(t, rt, c.ID, gantry.LogsOptions{})
		return nil
	})
	step("logs tail 1", map[string]int{mJobsGet: 1, mLogsList: 1}, func() error {
		got := readAll(t, rt, c.ID, gantry.LogsOptions{Tail: 1})
		if len(all) != 2 || len(got) != 1 || got[0] != all[1] {
			t.Errorf("tail 1 = %v, want the last of %v", lines(got), lines(all))
		}
		return nil
	})
	step("inspect by name", map[string]int{mJobsGet: 1}, func() error {
		_, err := rt.Inspect(ctx, c.Name)
		return err
	})
	step("inspect by prefix", map[string]int{mJobsGet: 1, mJobsList: 1}, func() error {
		_, err := rt.Inspect(ctx, c.ID[:12])
		return err
	})
	fresh := newRuntime(t, srv, Config{})
	step("inspect from a new Runtime", map[string]int{mJobsGet: 1, mTasksList: 1}, func() error {
		_, err := fresh.Inspect(ctx, c.ID)
		return err
	})
	step("remove", map[string]int{mJobsGet: 1, mJobsDelete: 1}, func() error { return rt.Remove(ctx, c.ID, gantry.RemoveOptions{}) })

	ok := sh("echo fine")
	step("create", map[string]int{mJobsCreate: 1}, func() (err error) {
		c, err = rt.Create(ctx, ok)
		return err
	})
	step("start", map[string]int{mJobsGet: 1, mJobsRun: 1}, func() error { return rt.Start(ctx, c.ID) })
	step("wait (succeeded: no task read)", map[string]int{mJobsGet: 1}, func() error {
		_, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		return err
	})
	step("list", map[string]int{mJobsList: 1}, func() error {
		_, err := rt.List(ctx, gantry.ListOptions{All: true})
		return err
	})
	step("kill (not running: refused after one read)", map[string]int{mJobsGet: 1}, func() error {
		if err := rt.Kill(ctx, c.ID, ""); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Kill of an exited container: %v, want ErrConflict", err)
		}
		return nil
	})
	step("kill SIGUSR1 (no call)", map[string]int{}, func() error {
		if err := rt.Kill(ctx, c.ID, "SIGUSR1"); !errors.Is(err, gantry.ErrNotSupported) {
			t.Errorf("Kill(SIGUSR1): %v, want ErrNotSupported", err)
		}
		return nil
	})
	step("exec (no call)", map[string]int{}, func() error {
		if _, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}}); !errors.Is(err, gantry.ErrNotSupported) {
			t.Errorf("Exec: %v, want ErrNotSupported", err)
		}
		return nil
	})
	step("remove", map[string]int{mJobsGet: 1, mJobsDelete: 1}, func() error { return rt.Remove(ctx, c.ID, gantry.RemoveOptions{}) })
}

// TestWaitSharesOnePoller: while many Waits are pending on running
// containers, the Runtime lists jobs once per tick for all of them.
func TestWaitSharesOnePoller(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	const n = 10
	ids := make([]string, n)
	for i := range ids {
		c, err := rt.Create(ctx, sh(forever))
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	var wg sync.WaitGroup
	results := make([]gantry.ExitStatus, n)
	errs := make([]error, n)
	srv.ResetCalls()
	for i, id := range ids {
		wg.Go(func() { results[i], errs[i] = rt.Wait(ctx, id, gantry.WaitNotRunning) })
	}
	// Let the waiters poll a while (bounded by the test's context), then
	// end the containers.
	for srv.Calls(mJobsList) < 5 && ctx.Err() == nil {
		time.Sleep(testPoll)
	}
	for _, id := range ids {
		if err := rt.Stop(ctx, id, gantry.StopOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || results[i].ExitCode != 143 || results[i].Signal != "SIGTERM" {
			t.Errorf("Wait %d = %+v, %v; want 143 SIGTERM", i, results[i], errs[i])
		}
	}
	ticks := rt.poller.Fetches()
	if got := srv.Calls(mJobsList); int64(got) > ticks {
		t.Errorf("%d ListJobs for %d poller ticks", got, ticks)
	}
	if got := srv.Calls(mExecsList); got != 0 {
		t.Errorf("%d ListExecutions, want none: the jobs' latest executions tell every Wait", got)
	}
	if got := srv.Calls(mJobsGet); got != 2*n {
		t.Errorf("%d GetJob calls for %d Waits and %d Stops, want one each", got, n, n)
	}
	if got := srv.Calls(mExecsGet); got != 0 {
		t.Errorf("%d GetExecution calls, want none while the listing shows every execution", got)
	}
}

// TestNameRace: creates racing for one name: exactly one wins, the others
// get ErrConflict, which still reaches the provider's error.
func TestNameRace(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			spec := sh("exit 0")
			spec.Name = "contested"
			_, err := rt.Create(ctx, spec)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	var won, lost int
	for err := range errs {
		var ae *apierror.APIError
		switch {
		case err == nil:
			won++
		case errors.Is(err, gantry.ErrConflict) && errors.As(err, &ae) && ae.GRPCStatus().Code() == codes.AlreadyExists:
			lost++
		default:
			t.Errorf("Create: %v, want success or an ErrConflict wrapping ALREADY_EXISTS", err)
		}
	}
	if won != 1 || lost != n-1 {
		t.Errorf("%d creates won and %d lost, want 1 and %d", won, lost, n-1)
	}
}

// TestRetriedCreateRecognised: a create whose first attempt succeeded but
// whose answer was lost meets ALREADY_EXISTS on retry, and recognises its
// own job by the ID label instead of reporting a conflict.
func TestRetriedCreateRecognised(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	spec := sh("exit 0")
	spec.Name = "retried"
	rec := meta.Record{ID: naming.NewID(spec.Name), Name: spec.Name, Created: time.Now().UTC(), Spec: spec}
	pb, err := rt.jobFor(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := &runpb.CreateJobRequest{Parent: rt.parent, Job: pb, JobId: jobIDForName(spec.Name)}
	// The "lost" first attempt.
	if _, err := rt.jobs.CreateJob(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.createJob(ctx, req, rec); err != nil {
		t.Fatalf("retried create: %v, want it recognised as its own", err)
	}
	other := rec
	other.ID = naming.NewID(spec.Name)
	if _, err := rt.createJob(ctx, req, other); !errors.Is(err, gantry.ErrConflict) {
		t.Fatalf("create by another container: %v, want ErrConflict", err)
	}
	got, err := rt.Inspect(ctx, "retried")
	if err != nil || got.ID != rec.ID {
		t.Fatalf("Inspect = %v, %v; want container %s", got, err, rec.ID)
	}
}

// TestFaults injects UNAVAILABLE into the next call of every method the
// backend uses, one at a time, and checks that the whole lifecycle still
// comes out right: one container, one run, exit 42, both lines, removed.
func TestFaults(t *testing.T) {
	for _, method := range []string{mJobsCreate, mJobsGet, mJobsList, mJobsRun, mJobsDelete, mExecsList, mExecsGet, mExecsCancel, mTasksList, mLogsList, mLogsTail, mOpsGet} {
		t.Run(method[strings.LastIndexByte(method, '/')+1:], func(t *testing.T) {
			t.Parallel()
			srv := newServer(t)
			rt := newRuntime(t, srv, Config{})
			ctx := testCtx(t)
			srv.InjectFault(method, gcptest.Fault{Code: codes.Unavailable, NextK: 2})
			spec := sh("echo to-stdout; echo to-stderr >&2; " + forever)
			spec.Name = "faulty"
			c, err := rt.Create(ctx, spec)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := rt.Start(ctx, c.Name); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := rt.Start(ctx, c.ID[:10]); err != nil {
				t.Fatalf("Start again: %v", err)
			}
			follow, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true})
			if err != nil {
				t.Fatalf("Logs(follow): %v", err)
			}
			want := map[gantry.Stream][]string{gantry.Stdout: {"to-stdout"}, gantry.Stderr: {"to-stderr"}}
			var followed []gantry.LogEntry
			for len(followed) < 2 {
				e, err := follow.Next()
				if err != nil {
					t.Fatalf("follow: %v after %v", err, lines(followed))
				}
				followed = append(followed, e)
			}
			if err := rt.Kill(ctx, c.ID, "SIGTERM"); err != nil {
				t.Fatalf("Kill: %v", err)
			}
			st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
			if err != nil || st != (gantry.ExitStatus{ExitCode: 143, Signal: "SIGTERM"}) {
				t.Fatalf("Wait = %+v, %v; want 143 SIGTERM", st, err)
			}
			for {
				e, err := follow.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("follow: %v", err)
				}
				followed = append(followed, e)
			}
			if diff := cmp.Diff(want, byStream(followed)); diff != "" {
				t.Errorf("followed logs (-want +got):\n%s", diff)
			}
			if err := rt.Start(ctx, c.ID); err != nil {
				t.Fatalf("restart: %v", err)
			}
			// Both runs' lines, once the second run has printed.
			again, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true})
			if err != nil {
				t.Fatalf("Logs(follow) of the second run: %v", err)
			}
			for n := 0; n < 4; n++ {
				if _, err := again.Next(); err != nil {
					t.Fatalf("follow the second run: %v after %d lines", err, n)
				}
			}
			again.Close()
			srv.InjectFault(method, gcptest.Fault{Code: codes.Unavailable, NextK: 1})
			if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); !errors.Is(err, gantry.ErrConflict) {
				t.Fatalf("Remove of a running container: %v, want ErrConflict", err)
			}
			if err := rt.Stop(ctx, c.ID, gantry.StopOptions{}); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			got, err := rt.Inspect(ctx, c.ID)
			if err != nil || got.State.ExitCode != 143 || got.RestartCount != 0 {
				t.Fatalf("Inspect = %+v, %v; want exited 143 and no restart-policy restarts", got, err)
			}
			if j, err := rt.resolve(ctx, c.ID); err != nil || j.pb.GetExecutionCount() != 2 {
				t.Fatalf("the job has %d executions (%v), want 2", j.pb.GetExecutionCount(), err)
			}
			want = map[gantry.Stream][]string{gantry.Stdout: {"to-stdout", "to-stdout"}, gantry.Stderr: {"to-stderr", "to-stderr"}}
			if diff := cmp.Diff(want, byStream(readAll(t, rt, c.ID, gantry.LogsOptions{}))); diff != "" {
				t.Errorf("logs of two runs (-want +got):\n%s", diff)
			}
			if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if list, err := rt.List(ctx, gantry.ListOptions{All: true}); err != nil || len(list) != 0 {
				t.Fatalf("List after Remove = %v, %v; want none", list, err)
			}
		})
	}
}
