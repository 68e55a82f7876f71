package cloudfunctions

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	functions "cloud.google.com/go/functions/apiv2"
	"cloud.google.com/go/functions/apiv2/functionspb"
	"github.com/gantryhq/gantry"
	"google.golang.org/api/iterator"
)

func spec(script string) gantry.Spec {
	return gantry.Spec{Image: image, Entrypoint: []string{"sh", "-c"}, Cmd: []string{script}}
}

// start creates and starts a container running script.
func start(t *testing.T, rt *Runtime, s gantry.Spec) *gantry.Container {
	t.Helper()
	ctx := t.Context()
	c, err := rt.Create(ctx, s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

// awaitLine waits until the container has logged line.
func awaitLine(t *testing.T, rt *Runtime, id, line string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := rt.Logs(t.Context(), id, gantry.LogsOptions{})
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		for {
			e, err := r.Next()
			if err != nil {
				break
			}
			if e.Line == line {
				r.Close()
				return
			}
		}
		r.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("container %s did not log %q", id, line)
}

func TestLifecycle(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := t.Context()
	c := start(t, rt, spec("echo out; echo err >&2; exit 3"))
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil || st.ExitCode != 3 {
		t.Fatalf("Wait = %+v, %v; want exit 3", st, err)
	}
	got, err := rt.Inspect(ctx, c.Name)
	if err != nil || got.State.Status != gantry.StatusExited || got.State.ExitCode != 3 {
		t.Fatalf("Inspect = %+v, %v; want exited 3", got, err)
	}
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if err := gantry.CopyLogs(&out, &errb, r); err != nil {
		t.Fatal(err)
	}
	if out.String() != "out\n" || errb.String() != "err\n" {
		t.Errorf("logs %q %q, want out and err", out.String(), errb.String())
	}
}

// TestStopCases holds Stop to the cases: a trap that exits 0
// reads 0, an untrapped SIGTERM 143, and ignoring SIGTERM past the
// timeout 137.
func TestStopCases(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		name, script string
		code         int
		signal       string
	}{
		{"Trapped", `trap "exit 0" TERM; echo ready; sleep 60 & wait`, 0, ""},
		{"Untrapped", `echo ready; sleep 60 & wait`, 143, "SIGTERM"},
		{"IgnoresTerm", `trap "" TERM; echo ready; while :; do sleep 0.1; done`, 137, "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := newRuntime(t, srv, Config{})
			c := start(t, rt, spec(tc.script))
			awaitLine(t, rt, c.ID, "ready")
			timeout := time.Second
			if err := rt.Stop(t.Context(), c.ID, gantry.StopOptions{Timeout: &timeout}); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			got, err := rt.Inspect(t.Context(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State.Status != gantry.StatusExited || got.State.ExitCode != tc.code || got.State.Signal != tc.signal {
				t.Errorf("after Stop: %+v, want exited %d %q", got.State, tc.code, tc.signal)
			}
		})
	}
}

// TestRemoveLeavesNothing: after Remove (forced, of a running container)
// the emulator holds no function of the project.
func TestRemoveLeavesNothing(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	ctx := t.Context()
	created, err := rt.Create(ctx, spec("exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	running := start(t, rt, spec("echo ready; sleep 60"))
	awaitLine(t, rt, running.ID, "ready")
	for _, id := range []string{created.ID, running.ID} {
		if err := rt.Remove(ctx, id, gantry.RemoveOptions{Force: true}); err != nil {
			t.Fatalf("Remove(%s): %v", id, err)
		}
		if _, err := rt.Inspect(ctx, id); !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
		}
	}
	c, err := functions.NewFunctionClient(ctx, srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	it := c.ListFunctions(ctx, &functionspb.ListFunctionsRequest{Parent: "projects/" + project + "/locations/-"})
	for {
		f, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("function %s (%s) remains after Remove", f.GetName(), f.GetState())
	}
}

// TestNewRuntimeRecoversRun: a run started by one Runtime is seen running
// by a new one, which waits for its exact exit code.
func TestNewRuntimeRecoversRun(t *testing.T) {
	srv := newServer(t)
	first := newRuntime(t, srv, Config{})
	c := start(t, first, spec("echo ready; sleep 1; exit 9"))
	first.Close()
	second := newRuntime(t, srv, Config{})
	got, err := second.Inspect(t.Context(), c.ID)
	if err != nil || got.State.Status != gantry.StatusRunning {
		t.Fatalf("Inspect from a new Runtime: %+v, %v; want running", got, err)
	}
	st, err := second.Wait(t.Context(), c.ID, gantry.WaitNotRunning)
	if err != nil || st.ExitCode != 9 {
		t.Errorf("Wait from a new Runtime = %+v, %v; want exit 9", st, err)
	}
}

// TestRefusedBeforeAnyCall: what a function cannot honour fails before
// any API call.
func TestRefusedBeforeAnyCall(t *testing.T) {
	srv := newServer(t)
	rt := newRuntime(t, srv, Config{})
	for name, tc := range map[string]struct {
		edit func(*gantry.Spec)
		want error
	}{
		"NotARuntime":   {func(s *gantry.Spec) { s.Image = "gcr.io/x/busybox" }, gantry.ErrInvalidArgument},
		"NoCommand":     {func(s *gantry.Spec) { s.Entrypoint, s.Cmd = nil, nil }, gantry.ErrInvalidArgument},
		"HalfCPU":       {func(s *gantry.Spec) { s.Resources.CPU = 0.5 }, gantry.ErrInvalidArgument},
		"TooLong":       {func(s *gantry.Spec) { s.Timeout = 2 * time.Hour }, gantry.ErrInvalidArgument},
		"SecretFile":    {func(s *gantry.Spec) { s.Secrets = []gantry.Secret{{Name: "s", Path: "/s"}} }, gantry.ErrNotSupported},
		"TooMuchMemory": {func(s *gantry.Spec) { s.Resources.MemoryBytes = 5 << 30 }, gantry.ErrInvalidArgument},
	} {
		s := spec("exit 0")
		tc.edit(&s)
		if _, err := rt.Create(context.Background(), s); !errors.Is(err, tc.want) {
			t.Errorf("%s: Create = %v, want %v", name, err, tc.want)
		}
	}
	if n := srv.Calls("/google.cloud.functions.v2.FunctionService/CreateFunction") + srv.Calls("/google.cloud.functions.v2.FunctionService/ListRuntimes"); n != 0 {
		t.Errorf("refused specs made %d calls, want none", n)
	}
}
