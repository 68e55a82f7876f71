package fake_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

// policyImages registers the images of these tests on a Go-mode Runtime:
//   - "test/exit": exits with EXIT at once;
//   - "test/serve": runs until SIGTERM (exit 0) or SIGKILL;
//   - "test/probe": runs until SIGTERM; its Exec exits with the code the
//     probe's last argument names, counting execs in *execs.
func policyImages(t *testing.T, execs *atomic.Int32, opts ...fake.Option) *fake.Runtime {
	t.Helper()
	rt := fake.New(opts...)
	t.Cleanup(func() { rt.Close() })
	rt.RegisterImage("test/exit", fake.Image{Run: func(_ context.Context, p *fake.Process) int {
		code, _ := strconv.Atoi(p.Getenv("EXIT"))
		return code
	}})
	serve := func(ctx context.Context, p *fake.Process) int {
		for {
			select {
			case s := <-p.Signals:
				if s == syscall.SIGTERM {
					return 0
				}
			case <-ctx.Done():
				return 0
			}
		}
	}
	rt.RegisterImage("test/serve", fake.Image{Run: serve})
	rt.RegisterImage("test/probe", fake.Image{Run: serve, Exec: func(_ context.Context, p *fake.Process) int {
		execs.Add(1)
		code, _ := strconv.Atoi(p.Args[len(p.Args)-1])
		return code
	}})
	return rt
}

func mustStart(t *testing.T, rt gantry.Runtime, spec gantry.Spec) string {
	t.Helper()
	c, err := rt.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// eventually polls Inspect until ok holds, for up to 10 s.
func eventually(t *testing.T, rt gantry.Runtime, id, what string, ok func(*gantry.Container) bool) *gantry.Container {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := rt.Inspect(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("container never %s: state %+v, RestartCount %d", what, c.State, c.RestartCount)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestGoRestartDelaysDouble(t *testing.T) {
	rt := policyImages(t, nil, fake.WithRestartDelay(20*time.Millisecond))
	id := mustStart(t, rt, gantry.Spec{Image: "test/exit", Env: []string{"EXIT=1"}, RestartPolicy: gantry.RestartPolicy{Name: gantry.RestartOnFailure, MaxRetries: 4}})
	began := time.Now()
	c := eventually(t, rt, id, "ended its restarts", func(c *gantry.Container) bool {
		return c.State.Status == gantry.StatusExited && c.RestartCount == 4
	})
	// 20 + 40 + 80 + 160 ms, as Docker's 100, 200, 400, 800.
	if d := time.Since(began); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("4 restarts took %v, want 300 ms and a little more", d)
	}
	if c.State.ExitCode != 1 || c.State.Running {
		t.Errorf("final state %+v", c.State)
	}
}

func TestGoRestartingState(t *testing.T) {
	rt := policyImages(t, nil, fake.WithRestartDelay(time.Hour))
	id := mustStart(t, rt, gantry.Spec{Image: "test/exit", Env: []string{"EXIT=2"}, RestartPolicy: gantry.RestartPolicy{Name: gantry.RestartAlways}})
	c := eventually(t, rt, id, "restarting", func(c *gantry.Container) bool { return c.State.Status == gantry.StatusRestarting })
	if !c.State.Running || c.RestartCount != 1 || c.State.ExitCode != 2 {
		t.Errorf("restarting: state %+v, RestartCount %d; want running, the restart counted, the exit code kept", c.State, c.RestartCount)
	}
	ctx := t.Context()
	// As Docker's: Start is a no-op, exec and pause are conflicts,
	// Remove needs Force, a not-running wait waits.
	if err := rt.Start(ctx, id); err != nil {
		t.Errorf("Start of a restarting container: %v, want a no-op", err)
	}
	if _, err := rt.Exec(ctx, id, gantry.ExecConfig{Cmd: []string{"true"}}); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("Exec: %v, want ErrConflict", err)
	}
	if err := rt.Remove(ctx, id, gantry.RemoveOptions{}); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("Remove without Force: %v, want ErrConflict", err)
	}
	if _, err := rt.DialPort(ctx, id, 80); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("DialPort: %v, want ErrConflict", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := rt.Wait(short, id, gantry.WaitNotRunning); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(not-running) on a restarting container: %v, want it to wait", err)
	}
	waited, err := gantry.RegisterWait(ctx, rt, id, gantry.WaitNotRunning)
	if err != nil {
		t.Fatal(err)
	}
	// Kill calls the restart off and leaves it exited with its code; the
	// wait returns with it.
	if err := rt.Kill(ctx, id, ""); err != nil {
		t.Fatalf("Kill of a restarting container: %v", err)
	}
	select {
	case res := <-waited:
		if res.Err != nil || res.Status.ExitCode != 2 {
			t.Errorf("wait across the Kill: %+v, want exit code 2", res)
		}
	case <-time.After(10 * time.Second):
		t.Error("a wait on a restarting container did not return when Kill called the restart off")
	}
	c, _ = rt.Inspect(ctx, id)
	if c.State.Status != gantry.StatusExited || c.State.Running || c.State.ExitCode != 2 || c.RestartCount != 1 {
		t.Errorf("after Kill: state %+v, RestartCount %d; want exited 2, count kept", c.State, c.RestartCount)
	}
	if err := rt.Kill(ctx, id, ""); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("second Kill: %v, want ErrConflict", err)
	}
}

func TestGoKillIsAManualStop(t *testing.T) {
	rt := policyImages(t, nil)
	id := mustStart(t, rt, gantry.Spec{Image: "test/serve", RestartPolicy: gantry.RestartPolicy{Name: gantry.RestartAlways}})
	// As Docker 20.10's (docker kill -s USR1 of a container that exits on
	// it does not restart), a kill with any signal counts as a manual
	// stop; SIGTERM ends this one.
	if err := rt.Kill(t.Context(), id, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	eventually(t, rt, id, "exited", func(c *gantry.Container) bool { return c.State.Status == gantry.StatusExited })
	time.Sleep(100 * time.Millisecond)
	if c, _ := rt.Inspect(t.Context(), id); c.State.Status != gantry.StatusExited || c.RestartCount != 0 {
		t.Errorf("after Kill: status %q, RestartCount %d; want exited, not restarted", c.State.Status, c.RestartCount)
	}
}

func TestGoRemoveForceCancelsRestart(t *testing.T) {
	rt := policyImages(t, nil, fake.WithRestartDelay(time.Hour))
	id := mustStart(t, rt, gantry.Spec{Image: "test/exit", RestartPolicy: gantry.RestartPolicy{Name: gantry.RestartUnlessStopped}})
	eventually(t, rt, id, "restarting", func(c *gantry.Container) bool { return c.State.Status == gantry.StatusRestarting })
	if err := rt.Remove(t.Context(), id, gantry.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Inspect(t.Context(), id); !errors.Is(err, gantry.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
}

func TestGoHealthFromExec(t *testing.T) {
	var execs atomic.Int32
	rt := policyImages(t, &execs)
	hc := &gantry.Healthcheck{Test: []string{"CMD-SHELL", "1"}, Interval: 5 * time.Millisecond, Retries: 2}
	id := mustStart(t, rt, gantry.Spec{Image: "test/probe", Healthcheck: hc})
	c := eventually(t, rt, id, "unhealthy", func(c *gantry.Container) bool {
		return c.State.Health != nil && c.State.Health.Status == gantry.HealthUnhealthy
	})
	if c.State.Health.FailingStreak < 2 || execs.Load() < 2 {
		t.Errorf("unhealthy with streak %d after %d execs", c.State.Health.FailingStreak, execs.Load())
	}
	// CMD passes its arguments as they are; CMD-SHELL gives /bin/sh -c.
	hc = &gantry.Healthcheck{Test: []string{"CMD", "check", "0"}, Interval: 5 * time.Millisecond}
	id = mustStart(t, rt, gantry.Spec{Image: "test/probe", Healthcheck: hc})
	eventually(t, rt, id, "healthy", func(c *gantry.Container) bool {
		return c.State.Health != nil && c.State.Health.Status == gantry.HealthHealthy
	})
	// An image without Exec fails every probe.
	hc = &gantry.Healthcheck{Test: []string{"CMD", "check", "0"}, Interval: 5 * time.Millisecond, Retries: 1}
	id = mustStart(t, rt, gantry.Spec{Image: "test/serve", Healthcheck: hc})
	eventually(t, rt, id, "unhealthy", func(c *gantry.Container) bool {
		return c.State.Health != nil && c.State.Health.Status == gantry.HealthUnhealthy
	})
}

func TestGoHealthNetworkProbes(t *testing.T) {
	rt := policyImages(t, nil)
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	health := func(id string) string {
		c, err := rt.Inspect(t.Context(), id)
		if err != nil || c.State.Health == nil {
			t.Fatalf("Inspect: %v, %+v", err, c)
		}
		return c.State.Health.Status
	}
	// HTTPPath on the spec's first port: 503 fails, 302 passes (not
	// followed).
	id := mustStart(t, rt, gantry.Spec{Image: "test/serve", Ports: []gantry.Port{{Port: port}},
		Healthcheck: &gantry.Healthcheck{HTTPPath: "/healthz", Interval: 5 * time.Millisecond, Retries: 1}})
	eventually(t, rt, id, "unhealthy", func(*gantry.Container) bool { return health(id) == gantry.HealthUnhealthy })
	status.Store(http.StatusFound)
	eventually(t, rt, id, "healthy", func(*gantry.Container) bool { return health(id) == gantry.HealthHealthy })

	// TCPPort passes while something listens.
	id = mustStart(t, rt, gantry.Spec{Image: "test/serve",
		Healthcheck: &gantry.Healthcheck{TCPPort: port, Interval: 5 * time.Millisecond}})
	eventually(t, rt, id, "healthy", func(*gantry.Container) bool { return health(id) == gantry.HealthHealthy })
	srv.Close()
	eventually(t, rt, id, "unhealthy", func(*gantry.Container) bool { return health(id) == gantry.HealthUnhealthy })

	// An HTTP probe needs a port.
	_, err := rt.Create(t.Context(), gantry.Spec{Image: "test/serve", Healthcheck: &gantry.Healthcheck{HTTPPath: "/"}})
	if !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Create with an HTTPPath probe and no port: %v, want ErrInvalidArgument", err)
	}
}

func TestGoDialPort(t *testing.T) {
	rt := policyImages(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "hi")
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	id := mustStart(t, rt, gantry.Spec{Image: "test/serve"})
	c, err := rt.DialPort(t.Context(), id, port)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi\n" {
		t.Errorf("read %q, %v", buf, err)
	}
	c.Close()
	ln.Close()
	if _, err := rt.DialPort(t.Context(), id, port); !errors.Is(err, gantry.ErrNotFound) {
		t.Errorf("DialPort to a closed port: %v, want ErrNotFound", err)
	}
	if _, err := rt.DialPort(t.Context(), id, 0); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("DialPort(0): %v, want ErrInvalidArgument", err)
	}
}
