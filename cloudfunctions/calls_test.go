package cloudfunctions

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/cloudfunctions/internal/runner"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/google/go-cmp/cmp"
)

// The API methods cloudfunctions calls.
const (
	mGet       = "/google.cloud.functions.v2.FunctionService/GetFunction"
	mList      = "/google.cloud.functions.v2.FunctionService/ListFunctions"
	mCreate    = "/google.cloud.functions.v2.FunctionService/CreateFunction"
	mDelete    = "/google.cloud.functions.v2.FunctionService/DeleteFunction"
	mUploadURL = "/google.cloud.functions.v2.FunctionService/GenerateUploadUrl"
	mRuntimes  = "/google.cloud.functions.v2.FunctionService/ListRuntimes"
	mOpsGet    = "/google.longrunning.Operations/GetOperation"
	mLogsList  = "/google.logging.v2.LoggingServiceV2/ListLogEntries"
	mLogsTail  = "/google.logging.v2.LoggingServiceV2/TailLogEntries"
)

// TestCallsPerOperation pins the API calls each operation makes, and the
// requests it sends to the function's runner by path, so that a change
// that adds one is seen. Operations are instant, so no GetOperation polls
// are counted. The runner's status is polled where an operation waits for
// the runner (Start, until the command has started): there the number of
// status reads depends on timing and only one at least is required.
func TestCallsPerOperation(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	paths := &pathCounter{}
	rt := newRuntime(t, srv, Config{HTTPClient: &http.Client{Transport: paths}})
	ctx := t.Context()
	type inv = map[string]int
	step := func(name string, want map[string]int, wantInv inv, polls bool, f func() error) {
		t.Helper()
		srv.ResetCalls()
		paths.reset()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, srv.CallCounts()); diff != "" {
			t.Errorf("%s: calls (-want +got):\n%s", name, diff)
		}
		got := paths.counts()
		if polls && got[runner.PathStatus] >= 1 {
			got[runner.PathStatus] = wantInv[runner.PathStatus]
		}
		if diff := cmp.Diff(wantInv, got); diff != "" {
			t.Errorf("%s: requests to the runner (-want +got):\n%s", name, diff)
		}
	}
	var c *gantry.Container
	// The first create of a runtime checks it against ListRuntimes; the
	// GetFunction is the check that the name is free. The upload goes to
	// the upload URL, not the function.
	step("create", map[string]int{mRuntimes: 1, mGet: 1, mUploadURL: 1, mCreate: 1}, inv{}, false, func() (err error) {
		c, err = rt.Create(ctx, spec("echo out; echo err >&2; exit 3"))
		return err
	})
	// Start reads the latest run, sends the run request it holds open,
	// and polls the new run's status until the runner has started it.
	step("start", map[string]int{mGet: 1}, inv{runner.PathStatus: 2, runner.PathRun: 1}, true, func() error { return rt.Start(ctx, c.ID) })
	// Whether a Wait right after Start finds the run over depends on
	// timing; a Wait of a run that has ended reads its status only (Stop
	// below counts the wait request of a run that has not).
	if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
		t.Fatal(err)
	}
	step("wait (ended)", map[string]int{mGet: 1}, inv{runner.PathStatus: 1}, false, func() error {
		st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		if err == nil && st.ExitCode != 3 {
			t.Errorf("Wait = %+v, want exit 3", st)
		}
		return err
	})
	// Logs reads the run's end from the runner, to know when to stop.
	step("logs", map[string]int{mGet: 1, mLogsList: 1}, inv{runner.PathStatus: 1}, false, func() error {
		r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
		if err != nil {
			return err
		}
		return gantry.CopyLogs(io.Discard, io.Discard, r)
	})
	step("inspect", map[string]int{mGet: 1}, inv{runner.PathStatus: 1}, false, func() error {
		_, err := rt.Inspect(ctx, c.ID)
		return err
	})
	step("inspect by name", map[string]int{mGet: 1}, inv{runner.PathStatus: 1}, false, func() error {
		_, err := rt.Inspect(ctx, c.Name)
		return err
	})
	// A prefix is neither a full ID nor a name: after the GetFunction of
	// the name it might be, the functions are listed.
	step("inspect by prefix", map[string]int{mGet: 1, mList: 1}, inv{runner.PathStatus: 1}, false, func() error {
		_, err := rt.Inspect(ctx, c.ID[:12])
		return err
	})
	step("list", map[string]int{mList: 1}, inv{runner.PathStatus: 1}, false, func() error {
		_, err := rt.List(ctx, gantry.ListOptions{All: true})
		return err
	})
	step("kill (not running: refused after one read)", map[string]int{mGet: 1}, inv{runner.PathStatus: 1}, false, func() error {
		if err := rt.Kill(ctx, c.ID, ""); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Kill of an exited container: %v, want ErrConflict", err)
		}
		return nil
	})
	step("exec (no call)", map[string]int{}, inv{}, false, func() error {
		if _, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}}); !errors.Is(err, gantry.ErrNotSupported) {
			t.Errorf("Exec: %v, want ErrNotSupported", err)
		}
		return nil
	})
	step("remove", map[string]int{mGet: 1, mDelete: 1}, inv{runner.PathStatus: 1}, false, func() error {
		return rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
	})

	// Runtimes already listed are not listed again.
	step("create again", map[string]int{mGet: 1, mUploadURL: 1, mCreate: 1}, inv{}, false, func() (err error) {
		c, err = rt.Create(ctx, spec("echo ready; sleep 60"))
		return err
	})
	step("start", map[string]int{mGet: 1}, inv{runner.PathStatus: 2, runner.PathRun: 1}, true, func() error { return rt.Start(ctx, c.ID) })
	awaitLine(t, rt, c.ID, "ready")
	// Stop reads the latest run, asks the runner to stop it and holds a
	// wait request until it has ended.
	step("stop", map[string]int{mGet: 1}, inv{runner.PathStatus: 1, runner.PathStop: 1, runner.PathWait: 1}, false, func() error {
		return rt.Stop(ctx, c.ID, gantry.StopOptions{})
	})
	step("remove", map[string]int{mGet: 1, mDelete: 1}, inv{runner.PathStatus: 1}, false, func() error {
		return rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
	})
}

// pathCounter counts the requests sent to functions' URLs by the
// runner's path, the part after the function's own URL.
type pathCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *pathCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	if p.n == nil {
		p.n = map[string]int{}
	}
	p.n[req.URL.Path[strings.LastIndexByte(req.URL.Path, '/'):]]++
	p.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (p *pathCounter) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.n)
}

func (p *pathCounter) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.n {
		out[k] = v
	}
	return out
}
