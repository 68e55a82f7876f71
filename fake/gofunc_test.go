package fake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

// newGo returns a runtime with the images the tests use:
//   - "test/echo": prints each argument on its own line to stdout, "err"
//     to stderr, and exits with the code given by EXIT (default 0);
//   - "test/trap": prints "ready", then exits 0 on SIGTERM, reporting
//     every signal it gets on sigs;
//   - "test/ignore": prints "ready" and ignores signals until killed;
//   - "test/stdin": copies stdin to stdout, then exits;
//   - "test/noexec": a Run function without Exec.
func newGo(t *testing.T, opts ...fake.Option) (*fake.Runtime, chan syscall.Signal) {
	t.Helper()
	sigs := make(chan syscall.Signal, 64)
	rt := fake.New(opts...)
	rt.RegisterImage("test/echo", fake.Image{
		Run: func(ctx context.Context, p *fake.Process) int {
			for _, a := range p.Args {
				fmt.Fprintln(p.Stdout, a)
			}
			fmt.Fprintln(p.Stderr, "err")
			var code int
			fmt.Sscan(p.Getenv("EXIT"), &code)
			return code
		},
		Exec: func(ctx context.Context, p *fake.Process) int {
			fmt.Fprintf(p.Stdout, "args=%s dir=%s user=%s tty=%t\n", strings.Join(p.Args, ","), p.WorkingDir, p.User, p.Tty)
			fmt.Fprintf(p.Stderr, "env=%s\n", strings.Join(p.Env, ","))
			in, _ := io.ReadAll(p.Stdin)
			fmt.Fprintf(p.Stdout, "stdin=%s\n", in)
			var code int
			fmt.Sscan(p.Getenv("EXIT"), &code)
			return code
		},
	})
	trap := func(ctx context.Context, p *fake.Process) int {
		fmt.Fprintln(p.Stdout, "ready")
		for {
			select {
			case s := <-p.Signals:
				sigs <- s
				if s == syscall.SIGTERM {
					fmt.Fprintln(p.Stdout, "got TERM")
					return 0
				}
			case <-ctx.Done():
				fmt.Fprintln(p.Stdout, "written after SIGKILL")
				return 0
			}
		}
	}
	rt.RegisterImage("test/trap", fake.Image{Run: trap, Exec: func(ctx context.Context, p *fake.Process) int {
		<-ctx.Done()
		return 0
	}})
	rt.RegisterImage("test/ignore:1", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		fmt.Fprintln(p.Stdout, "ready")
		for {
			select {
			case s := <-p.Signals:
				sigs <- s
			case <-ctx.Done():
				return 0
			}
		}
	}})
	rt.RegisterImage("test/stdin", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		fmt.Fprintln(p.Stdout, "ready")
		io.Copy(p.Stdout, p.Stdin)
		return 0
	}})
	rt.RegisterImage("test/noexec", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		fmt.Fprintln(p.Stdout, "ready")
		<-ctx.Done()
		return 0
	}})
	t.Cleanup(func() { rt.Close() })
	return rt, sigs
}

func create(t *testing.T, rt gantry.Runtime, spec gantry.Spec) *gantry.Container {
	t.Helper()
	c, err := rt.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create %+v: %v", spec, err)
	}
	return c
}

func start(t *testing.T, rt gantry.Runtime, spec gantry.Spec) *gantry.Container {
	t.Helper()
	c := create(t, rt, spec)
	if err := rt.Start(context.Background(), c.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	return c
}

func state(t *testing.T, rt gantry.Runtime, id string) gantry.State {
	t.Helper()
	c, err := rt.Inspect(context.Background(), id)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	return c.State
}

func wait(t *testing.T, rt gantry.Runtime, id string) gantry.ExitStatus {
	t.Helper()
	st, err := rt.Wait(context.Background(), id, gantry.WaitNotRunning)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return st
}

func entries(t *testing.T, rt gantry.Runtime, id string, opts gantry.LogsOptions) []gantry.LogEntry {
	t.Helper()
	r, err := rt.Logs(context.Background(), id, opts)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer r.Close()
	var es []gantry.LogEntry
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return es
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		es = append(es, e)
	}
}

func texts(es []gantry.LogEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Stream.String()+":"+e.Line)
	}
	return out
}

// registered registers a wait for cond and returns once the fake holds
// it.
func registered(t *testing.T, ctx context.Context, rt *fake.Runtime, id string, cond gantry.WaitCondition) <-chan gantry.WaitResult {
	t.Helper()
	ch, err := rt.RegisterWait(ctx, id, cond)
	if err != nil {
		t.Fatalf("RegisterWait(%s, %s): %v", id, cond, err)
	}
	return ch
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func TestGoLifecycleAndOutput(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := create(t, rt, gantry.Spec{Image: "test/echo", Entrypoint: []string{"echo"}, Cmd: []string{"a", "b c"}, Env: []string{"EXIT=3"}})
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(c.ID) {
		t.Errorf("ID %q is not 64 hex digits", c.ID)
	}
	if !gantry.ValidName(c.Name) || c.Spec.Name != c.Name {
		t.Errorf("generated name %q (spec %q)", c.Name, c.Spec.Name)
	}
	if c.State.Status != gantry.StatusCreated || c.State.Running {
		t.Errorf("created state %+v", c.State)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(gantry.ExitStatus{ExitCode: 3}, wait(t, rt, c.ID)); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
	want := []string{"stdout:echo", "stdout:a", "stdout:b c", "stderr:err"}
	if diff := cmp.Diff(want, texts(entries(t, rt, c.ID, gantry.LogsOptions{}))); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
	st := state(t, rt, c.ID)
	if st.Status != gantry.StatusExited || st.ExitCode != 3 || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("exited state %+v", st)
	}
	if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := rt.Inspect(ctx, c.ID)
	wantErr(t, "inspect after remove", err, gantry.ErrNotFound)
	_, err = rt.Logs(ctx, c.ID, gantry.LogsOptions{})
	wantErr(t, "logs after remove", err, gantry.ErrNotFound)
}

func TestGoExitCodeModulo256(t *testing.T) {
	rt, _ := newGo(t)
	c := start(t, rt, gantry.Spec{Image: "test/echo", Env: []string{"EXIT=257"}})
	if st := wait(t, rt, c.ID); st.ExitCode != 1 {
		t.Errorf("exit code %d, want 257 mod 256 = 1", st.ExitCode)
	}
}

func TestGoCreateErrors(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	_, err := rt.Create(ctx, gantry.Spec{Image: "nobody/registered:2"})
	wantErr(t, "unregistered image", err, gantry.ErrNotFound)
	if err == nil || !strings.Contains(err.Error(), "nobody/registered:2") {
		t.Errorf("the error does not name the image: %v", err)
	}
	_, err = rt.Create(ctx, gantry.Spec{Image: "test/echo", Env: []string{"NOEQUALS"}})
	wantErr(t, "invalid env", err, gantry.ErrInvalidArgument)
	_, err = rt.Create(ctx, gantry.Spec{Image: "test/echo", Name: "/bad name"})
	wantErr(t, "invalid name", err, gantry.ErrInvalidArgument)
	_, err = rt.Create(ctx, gantry.Spec{Image: "test/echo", Mounts: []gantry.Mount{{Type: gantry.MountTmpfs, Target: "/tmp"}}})
	wantErr(t, "mounts", err, gantry.ErrNotSupported)
	_, err = rt.Create(ctx, gantry.Spec{Image: "test/echo", Secrets: []gantry.Secret{{Name: "missing", Env: "S"}}})
	wantErr(t, "unknown secret", err, gantry.ErrNotFound)
	create(t, rt, gantry.Spec{Image: "test/echo", Name: "taken"})
	_, err = rt.Create(ctx, gantry.Spec{Image: "test/echo", Name: "taken"})
	wantErr(t, "duplicate name", err, gantry.ErrConflict)
	list, _ := rt.List(ctx, gantry.ListOptions{All: true})
	if len(list) != 1 {
		t.Errorf("refused creates left %d containers, want only the first 'taken'", len(list))
	}
	// The image a bare reference names is its :latest.
	create(t, rt, gantry.Spec{Image: "test/echo:latest"})
	_, err = rt.Create(ctx, gantry.Spec{Image: "test/ignore"})
	wantErr(t, "test/ignore means test/ignore:latest, which is not registered", err, gantry.ErrNotFound)
}

func TestGoLookup(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	byFirst := map[byte][]*gantry.Container{}
	var a, b *gantry.Container
	for a == nil {
		c := create(t, rt, gantry.Spec{Image: "test/echo"})
		if prev := byFirst[c.ID[0]]; len(prev) > 0 {
			a, b = prev[0], c
		}
		byFirst[c.ID[0]] = append(byFirst[c.ID[0]], c)
	}
	for _, id := range []string{a.ID, a.Name, a.ID[:12]} {
		got, err := rt.Inspect(ctx, id)
		if err != nil || got.ID != a.ID {
			t.Errorf("inspect %q: %v, %v", id, got, err)
		}
	}
	common := 0
	for a.ID[common] == b.ID[common] {
		common++
	}
	_, err := rt.Inspect(ctx, a.ID[:common])
	wantErr(t, "ambiguous prefix", err, gantry.ErrInvalidArgument)
	_, err = rt.Inspect(ctx, "zzzz")
	wantErr(t, "unknown", err, gantry.ErrNotFound)
	_, err = rt.Inspect(ctx, "")
	wantErr(t, "empty", err, gantry.ErrInvalidArgument)
	// A name wins over an ID prefix, as in Docker.
	named := create(t, rt, gantry.Spec{Image: "test/echo", Name: a.ID[:8]})
	if got, _ := rt.Inspect(ctx, a.ID[:8]); got.ID != named.ID {
		t.Errorf("lookup of %q found %s, want the container of that name", a.ID[:8], got.ID)
	}
	_, err = rt.Wait(ctx, "zzzz", gantry.WaitNotRunning)
	wantErr(t, "wait unknown", err, gantry.ErrNotFound)
}

func TestGoStartStopRules(t *testing.T) {
	rt, sigs := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/trap"})
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Errorf("start of a running container: %v", err)
	}
	if st := state(t, rt, c.ID); st.Status != gantry.StatusRunning || !st.Running {
		t.Errorf("state %+v", st)
	}
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := <-sigs; s != syscall.SIGTERM {
		t.Errorf("stop sent %v, want SIGTERM", s)
	}
	if st := state(t, rt, c.ID); st.Status != gantry.StatusExited || st.ExitCode != 0 {
		t.Errorf("state after trapped stop %+v", st)
	}
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{}); err != nil {
		t.Errorf("stop of a stopped container: %v", err)
	}
	// Start again: the logs span both runs, the count grows.
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	<-sigs
	if diff := cmp.Diff([]string{"stdout:ready", "stdout:got TERM", "stdout:ready", "stdout:got TERM"}, texts(entries(t, rt, c.ID, gantry.LogsOptions{}))); diff != "" {
		t.Errorf("logs over two runs (-want +got):\n%s", diff)
	}
	in, _ := rt.Inspect(ctx, c.ID)
	if in.RestartCount != 0 {
		t.Errorf("RestartCount %d after two runs, want 0 (no restart policy)", in.RestartCount)
	}
	err := rt.Stop(ctx, c.ID, gantry.StopOptions{Signal: "SIGNOPE"})
	wantErr(t, "stop with an unknown signal", err, gantry.ErrInvalidArgument)
}

func TestGoStopTimeouts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		spec    gantry.Spec
		opts    gantry.StopOptions
		signals []syscall.Signal
	}{
		{"zero kills at once", gantry.Spec{Image: "test/ignore:1"}, gantry.StopOptions{Timeout: new(time.Duration(0))}, []syscall.Signal{syscall.SIGTERM}},
		{"positive then kill", gantry.Spec{Image: "test/ignore:1"}, gantry.StopOptions{Timeout: new(time.Millisecond)}, []syscall.Signal{syscall.SIGTERM}},
		{"spec stop timeout", gantry.Spec{Image: "test/ignore:1", StopTimeout: new(time.Millisecond)}, gantry.StopOptions{}, []syscall.Signal{syscall.SIGTERM}},
		{"spec stop signal", gantry.Spec{Image: "test/ignore:1", StopSignal: "SIGUSR2"}, gantry.StopOptions{Timeout: new(time.Millisecond)}, []syscall.Signal{12}},
		{"options signal", gantry.Spec{Image: "test/ignore:1", StopSignal: "SIGUSR2"}, gantry.StopOptions{Signal: "HUP", Timeout: new(time.Millisecond)}, []syscall.Signal{syscall.SIGHUP}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, sigs := newGo(t)
			c := start(t, rt, tc.spec)
			waitForLine(t, rt, c.ID, "ready")
			if err := rt.Stop(ctx, c.ID, tc.opts); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(gantry.ExitStatus{ExitCode: 137, Signal: "SIGKILL"}, wait(t, rt, c.ID)); diff != "" {
				t.Errorf("exit (-want +got):\n%s", diff)
			}
			if got := <-sigs; got != tc.signals[0] {
				t.Errorf("signal %v, want %v", got, tc.signals[0])
			}
		})
	}
}

// TestGoStopNegativeWaitsForever shows that a negative timeout never
// kills: the image decides when to exit, and its own code stands.
func TestGoStopNegativeWaitsForever(t *testing.T) {
	release := make(chan struct{})
	rt := fake.New(fake.WithImage("test/slow:1", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		<-p.Signals
		<-release
		return 7
	}}))
	defer rt.Close()
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/slow:1"})
	stopped := make(chan error, 1)
	go func() { stopped <- rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: new(time.Duration(-1))}) }()
	if st := state(t, rt, c.ID); !st.Running {
		t.Errorf("running before release: %+v", st)
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(gantry.ExitStatus{ExitCode: 7}, wait(t, rt, c.ID)); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
}

func TestGoStopContextCancelled(t *testing.T) {
	rt, _ := newGo(t)
	c := start(t, rt, gantry.Spec{Image: "test/ignore:1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantErr(t, "stop with a cancelled context", rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: new(time.Duration(-1))}), context.Canceled)
}

func TestGoKill(t *testing.T) {
	rt, sigs := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/trap"})
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Kill(ctx, c.ID, "SIGUSR1"); err != nil {
		t.Fatal(err)
	}
	if s := <-sigs; s != 10 {
		t.Errorf("delivered %v, want SIGUSR1 (10)", s)
	}
	if st := state(t, rt, c.ID); !st.Running {
		t.Errorf("a trapped SIGUSR1 stopped the container: %+v", st)
	}
	wantErr(t, "kill with a bad signal", rt.Kill(ctx, c.ID, "SIGBOGUS"), gantry.ErrInvalidArgument)
	if err := rt.Kill(ctx, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	st := state(t, rt, c.ID)
	if st.Status != gantry.StatusExited || st.ExitCode != 137 || st.Signal != "SIGKILL" {
		t.Errorf("state after kill %+v", st)
	}
	// The image saw ctx end and wrote after SIGKILL: discarded.
	if got := texts(entries(t, rt, c.ID, gantry.LogsOptions{})); !cmp.Equal(got, []string{"stdout:ready"}) {
		t.Errorf("logs %q: output after SIGKILL was kept", got)
	}
	wantErr(t, "kill of an exited container", rt.Kill(ctx, c.ID, ""), gantry.ErrConflict)
	created := create(t, rt, gantry.Spec{Image: "test/trap"})
	wantErr(t, "kill of a created container", rt.Kill(ctx, created.ID, "TERM"), gantry.ErrConflict)
}

func TestGoRemove(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/trap"})
	wantErr(t, "remove of a running container", rt.Remove(ctx, c.ID, gantry.RemoveOptions{}), gantry.ErrConflict)
	if st := state(t, rt, c.ID); !st.Running {
		t.Fatalf("a refused remove changed the state: %+v", st)
	}
	removed := registered(t, ctx, rt, c.ID, gantry.WaitRemoved)
	idle := create(t, rt, gantry.Spec{Image: "test/trap"})
	nextExit := registered(t, ctx, rt, idle.ID, gantry.WaitNextExit)
	if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if st := (<-removed).Status; st.ExitCode != 137 {
		t.Errorf("removed waiter got %+v, want the forced kill's 137", st)
	}
	_, err := rt.Inspect(ctx, c.ID)
	wantErr(t, "inspect removed", err, gantry.ErrNotFound)
	wantErr(t, "remove twice", rt.Remove(ctx, c.ID, gantry.RemoveOptions{}), gantry.ErrNotFound)
	// Removal also ends a next-exit wait, with the exit code so far.
	if err := rt.Remove(ctx, idle.ID, gantry.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := (<-nextExit).Status; st.ExitCode != 0 {
		t.Errorf("next-exit waiter woken by removal got %+v", st)
	}
}

func TestGoWaitConditions(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := create(t, rt, gantry.Spec{Image: "test/echo", Env: []string{"EXIT=5"}})
	if st, err := rt.Wait(ctx, c.ID, ""); err != nil || st.ExitCode != 0 {
		t.Errorf("not-running on a created container: %+v, %v; want 0 at once", st, err)
	}
	next := registered(t, ctx, rt, c.ID, gantry.WaitNextExit)
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if st := (<-next).Status; st.ExitCode != 5 {
		t.Errorf("next-exit %+v, want 5", st)
	}
	if st := wait(t, rt, c.ID); st.ExitCode != 5 {
		t.Errorf("not-running after exit %+v", st)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := rt.Wait(cctx, c.ID, gantry.WaitNextExit)
	wantErr(t, "wait with a cancelled context", err, context.Canceled)
	_, err = rt.Wait(ctx, c.ID, "sometime")
	wantErr(t, "unknown condition", err, gantry.ErrInvalidArgument)
}

func TestGoTimeout(t *testing.T) {
	rt, sigs := newGo(t)
	c := start(t, rt, gantry.Spec{Image: "test/trap", Timeout: time.Millisecond})
	st := wait(t, rt, c.ID)
	if st.ExitCode != 0 || !strings.Contains(st.Error, "Timeout") {
		t.Errorf("exit after Timeout %+v, want 0 (TERM trapped) and an Error", st)
	}
	if s := <-sigs; s != syscall.SIGTERM {
		t.Errorf("timeout sent %v", s)
	}
	if in := state(t, rt, c.ID); in.Error != st.Error {
		t.Errorf("State.Error %q, want %q", in.Error, st.Error)
	}
}

func TestGoRestart(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/trap", Name: "svc"})
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Restart(ctx, "svc", gantry.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	in, _ := rt.Inspect(ctx, "svc")
	if in.ID != c.ID || in.RestartCount != 0 || in.State.Status != gantry.StatusRunning {
		t.Errorf("after restart: id %s count %d state %+v", in.ID, in.RestartCount, in.State)
	}
	rt.Stop(ctx, c.ID, gantry.StopOptions{})
	if diff := cmp.Diff([]string{"stdout:ready", "stdout:got TERM", "stdout:ready", "stdout:got TERM"}, texts(entries(t, rt, c.ID, gantry.LogsOptions{}))); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
	created := create(t, rt, gantry.Spec{Image: "test/echo"})
	if err := gantry.Restart(ctx, rt, created.ID, gantry.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, rt, created.ID); st.ExitCode != 0 {
		t.Errorf("restart of a created container: %+v", st)
	}
}

func TestGoExec(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	var o, e bytes.Buffer
	rt2, _ := newGo(t)
	// test/echo exits at once; exec needs a running container.
	c2 := start(t, rt2, gantry.Spec{Image: "test/echo"})
	wait(t, rt2, c2.ID)
	_, err := rt2.Exec(ctx, c2.ID, gantry.ExecConfig{Cmd: []string{"x"}})
	wantErr(t, "exec in an exited container", err, gantry.ErrConflict)

	release := make(chan struct{})
	rt3 := fake.New(fake.WithImage("test/echoexec:1", fake.Image{
		Run: func(ctx context.Context, p *fake.Process) int {
			<-release
			return 0
		},
		Exec: func(ctx context.Context, p *fake.Process) int {
			fmt.Fprintf(p.Stdout, "args=%s dir=%s user=%s tty=%t\n", strings.Join(p.Args, ","), p.WorkingDir, p.User, p.Tty)
			fmt.Fprintf(p.Stderr, "env=%s\n", strings.Join(p.Env, ","))
			in, _ := io.ReadAll(p.Stdin)
			fmt.Fprintf(p.Stdout, "stdin=%s\n", in)
			var code int
			fmt.Sscan(p.Getenv("EXIT"), &code)
			return code
		},
	}))
	defer rt3.Close()
	defer close(release)
	c3 := start(t, rt3, gantry.Spec{Image: "test/echoexec:1", Env: []string{"A=1"}, WorkingDir: "/srv", User: "app"})
	res, err := rt3.Exec(ctx, c3.ID, gantry.ExecConfig{Cmd: []string{"x", "y"}, Env: []string{"EXIT=4"}, WorkingDir: "/tmp", Stdin: strings.NewReader("input"), Stdout: &o, Stderr: &e})
	if err != nil || res.ExitCode != 4 {
		t.Fatalf("exec: %+v, %v", res, err)
	}
	if o.String() != "args=x,y dir=/tmp user=app tty=false\nstdin=input\n" || e.String() != "env=A=1,EXIT=4\n" {
		t.Errorf("stdout %q stderr %q", o.String(), e.String())
	}
	o.Reset()
	res, err = rt3.Exec(ctx, c3.ID, gantry.ExecConfig{Cmd: []string{"t"}, Tty: true, Stdout: &o})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("tty exec: %+v, %v", res, err)
	}
	if o.String() != "args=t dir=/srv user=app tty=true\nenv=A=1\nstdin=\n" {
		t.Errorf("tty exec: one stream %q", o.String())
	}
	_, err = rt3.Exec(ctx, c3.ID, gantry.ExecConfig{})
	wantErr(t, "exec without a command", err, gantry.ErrInvalidArgument)
	_, err = rt3.Exec(ctx, c3.ID, gantry.ExecConfig{Cmd: []string{"x"}, Env: []string{"1BAD=x"}})
	wantErr(t, "exec with a bad env", err, gantry.ErrInvalidArgument)

	n := start(t, rt, gantry.Spec{Image: "test/noexec"})
	_, err = rt.Exec(ctx, n.ID, gantry.ExecConfig{Cmd: []string{"x"}})
	wantErr(t, "exec in an image without Exec", err, gantry.ErrNotSupported)
	if err == nil || !strings.Contains(err.Error(), "test/noexec") {
		t.Errorf("the error does not name the image: %v", err)
	}
}

func TestGoExecEndsWithContainer(t *testing.T) {
	started := make(chan struct{})
	rt := fake.New(fake.WithImage("test/block:1", fake.Image{
		Run: func(ctx context.Context, p *fake.Process) int {
			<-ctx.Done()
			return 0
		},
		Exec: func(ctx context.Context, p *fake.Process) int {
			close(started)
			<-ctx.Done()
			return 0
		},
	}))
	defer rt.Close()
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/block:1"})
	done := make(chan gantry.ExecResult, 1)
	go func() {
		res, _ := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"block"}})
		done <- res
	}()
	<-started
	if err := rt.Kill(ctx, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.ExitCode != 137 || res.Signal != "SIGKILL" {
		t.Errorf("exec result when the container was killed: %+v, want 137 SIGKILL", res)
	}
}

func TestGoLogsOptions(t *testing.T) {
	step := make(chan string)
	rt := fake.New(fake.WithImage("test/lines:1", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		for line := range step {
			w := p.Stdout
			if strings.HasPrefix(line, "E") {
				w = p.Stderr
			}
			io.WriteString(w, line)
		}
		return 0
	}}))
	defer rt.Close()
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/lines:1"})
	follow, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	step <- "o1\n"
	step <- "E1\n"
	step <- "o2\n"
	step <- "o3 partial "
	e, err := follow.Next()
	if err != nil || e.Line != "E1" || e.Stream != gantry.Stderr {
		t.Fatalf("follower: %+v, %v", e, err)
	}
	mid := e.Time
	step <- "end\n"
	step <- "E2\n"
	close(step)
	e, err = follow.Next()
	if err != nil || e.Line != "E2" {
		t.Fatalf("follower: %+v, %v", e, err)
	}
	if _, err := follow.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("follower after exit: %v, want io.EOF", err)
	}
	if _, err := follow.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("follower repeats its error: %v", err)
	}
	wait(t, rt, c.ID)
	all := entries(t, rt, c.ID, gantry.LogsOptions{})
	if diff := cmp.Diff([]string{"stdout:o1", "stderr:E1", "stdout:o2", "stdout:o3 partial end", "stderr:E2"}, texts(all)); diff != "" {
		t.Fatalf("all (-want +got):\n%s", diff)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Errorf("entry %d is older than entry %d", i, i-1)
		}
	}
	for _, tc := range []struct {
		name string
		opts gantry.LogsOptions
		want []string
	}{
		{"stdout", gantry.LogsOptions{Stdout: true}, []string{"stdout:o1", "stdout:o2", "stdout:o3 partial end"}},
		{"stderr", gantry.LogsOptions{Stderr: true}, []string{"stderr:E1", "stderr:E2"}},
		{"tail", gantry.LogsOptions{Tail: 2}, []string{"stdout:o3 partial end", "stderr:E2"}},
		{"tail of stdout", gantry.LogsOptions{Tail: 2, Stdout: true}, []string{"stdout:o3 partial end"}},
		{"tail before the stream", gantry.LogsOptions{Tail: 1, Stdout: true}, []string{}},
		{"tail beyond", gantry.LogsOptions{Tail: 50, Stderr: true}, []string{"stderr:E1", "stderr:E2"}},
		{"tail none", gantry.LogsOptions{Tail: gantry.TailNone}, []string{}},
		{"since inclusive", gantry.LogsOptions{Since: mid, Stderr: true}, []string{"stderr:E1", "stderr:E2"}},
		{"until inclusive", gantry.LogsOptions{Until: mid}, []string{"stdout:o1", "stderr:E1"}},
		{"since and until", gantry.LogsOptions{Since: all[0].Time, Until: all[2].Time}, texts(all[:3])},
		{"follow on exited", gantry.LogsOptions{Follow: true, Tail: 1}, []string{"stderr:E2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := texts(entries(t, rt, c.ID, tc.opts))
			if tc.name == "since and until" && all[2].Time.Equal(all[3].Time) {
				t.Skip("two entries share a timestamp on this clock")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	r, _ := rt.Logs(ctx, c.ID, gantry.LogsOptions{Timestamps: true})
	if !r.Timestamps() {
		t.Error("Timestamps() is false for a reader opened with Timestamps")
	}
	_, err = rt.Logs(ctx, c.ID, gantry.LogsOptions{Tail: -2})
	wantErr(t, "tail -2", err, gantry.ErrInvalidArgument)
	_, err = rt.Logs(ctx, c.ID, gantry.LogsOptions{Since: mid, Until: mid.Add(-1)})
	wantErr(t, "until before since", err, gantry.ErrInvalidArgument)
}

func TestGoLogsFollowEnds(t *testing.T) {
	rt, _ := newGo(t)
	c := start(t, rt, gantry.Spec{Image: "test/ignore:1"})
	waitForLine(t, rt, c.ID, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Follow: true, Tail: gantry.TailNone})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("follower after cancel: %v", err)
	}
	r, _ = rt.Logs(context.Background(), c.ID, gantry.LogsOptions{Follow: true, Tail: gantry.TailNone})
	got := make(chan error, 1)
	go func() {
		_, err := r.Next()
		got <- err
	}()
	r.Close()
	if err := <-got; !errors.Is(err, io.EOF) {
		t.Errorf("follower after Close: %v, want io.EOF", err)
	}
	r, _ = rt.Logs(context.Background(), c.ID, gantry.LogsOptions{Follow: true, Tail: gantry.TailNone, Until: time.Now().Add(time.Millisecond)})
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("follower past Until: %v, want io.EOF", err)
	}
}

func TestGoLogLimit(t *testing.T) {
	rt := fake.New(fake.WithLogLimit(200), fake.WithImage("test/many:1", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		for i := range 100 {
			fmt.Fprintf(p.Stdout, "line %02d\n", i)
		}
		return 0
	}}))
	defer rt.Close()
	c := start(t, rt, gantry.Spec{Image: "test/many:1"})
	wait(t, rt, c.ID)
	got := entries(t, rt, c.ID, gantry.LogsOptions{})
	// Each line costs 7 bytes and a 48-byte overhead: 3 fit in 200.
	if diff := cmp.Diff([]string{"stdout:line 97", "stdout:line 98", "stdout:line 99"}, texts(got)); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
}

func TestGoPause(t *testing.T) {
	rt, sigs := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/trap"})
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Pause(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if st := state(t, rt, c.ID); st.Status != gantry.StatusPaused || !st.Paused || !st.Running {
		t.Errorf("paused state %+v", st)
	}
	wantErr(t, "pause twice", rt.Pause(ctx, c.ID), gantry.ErrConflict)
	wantErr(t, "start paused", rt.Start(ctx, c.ID), gantry.ErrConflict)
	_, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"x"}})
	wantErr(t, "exec paused", err, gantry.ErrConflict)
	wantErr(t, "remove paused", rt.Remove(ctx, c.ID, gantry.RemoveOptions{}), gantry.ErrConflict)
	if err := rt.Unpause(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "unpause running", rt.Unpause(ctx, c.ID), gantry.ErrConflict)
	// Stop of a paused container delivers the signal and resumes it, so
	// the image's "got TERM" (a write) gets through.
	rt.Pause(ctx, c.ID)
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	<-sigs
	if st := state(t, rt, c.ID); st.Status != gantry.StatusExited || st.ExitCode != 0 || st.Paused {
		t.Errorf("state after stopping a paused container %+v", st)
	}
	if got := texts(entries(t, rt, c.ID, gantry.LogsOptions{})); !cmp.Equal(got, []string{"stdout:ready", "stdout:got TERM"}) {
		t.Errorf("logs %q", got)
	}
	wantErr(t, "pause exited", rt.Pause(ctx, c.ID), gantry.ErrConflict)
}

// TestGoPauseBlocksWrites pauses a container before its image writes: the
// write is held until the container is killed, and then discarded; in a
// second run, Unpause lets the held write through.
func TestGoPauseBlocksWrites(t *testing.T) {
	var write, wrote chan struct{}
	rt := fake.New(fake.WithImage("test/writer:1", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		<-write
		io.WriteString(p.Stdout, "late\n")
		close(wrote)
		<-ctx.Done()
		return 0
	}}))
	defer rt.Close()
	ctx := context.Background()
	for _, unpause := range []bool{false, true} {
		write, wrote = make(chan struct{}), make(chan struct{})
		c := start(t, rt, gantry.Spec{Image: "test/writer:1"})
		if err := rt.Pause(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		close(write)
		want := []string{}
		if unpause {
			if err := rt.Unpause(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			<-wrote
			want = []string{"stdout:late"}
		}
		if err := rt.Kill(ctx, c.ID, ""); err != nil {
			t.Fatal(err)
		}
		<-wrote
		if got := texts(entries(t, rt, c.ID, gantry.LogsOptions{})); !cmp.Equal(got, want) {
			t.Errorf("unpause %t: logs %q, want %q", unpause, got, want)
		}
	}
}

func TestGoRenameUpdate(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	a := create(t, rt, gantry.Spec{Image: "test/echo", Name: "one"})
	create(t, rt, gantry.Spec{Image: "test/echo", Name: "two"})
	wantErr(t, "rename to a taken name", rt.Rename(ctx, "one", "two"), gantry.ErrConflict)
	// Names that are not hex, so no ID prefix can match them.
	wantErr(t, "rename to a bad name", rt.Rename(ctx, "one", "-x"), gantry.ErrInvalidArgument)
	wantErr(t, "rename to the same name", rt.Rename(ctx, "one", "one"), gantry.ErrInvalidArgument)
	wantErr(t, "rename unknown", rt.Rename(ctx, "zzz", "three"), gantry.ErrNotFound)
	if err := rt.Rename(ctx, "one", "three"); err != nil {
		t.Fatal(err)
	}
	if got, err := rt.Inspect(ctx, "three"); err != nil || got.ID != a.ID || got.Spec.Name != "three" {
		t.Errorf("inspect by the new name: %+v, %v", got, err)
	}
	_, err := rt.Inspect(ctx, "one")
	wantErr(t, "old name", err, gantry.ErrNotFound)
	create(t, rt, gantry.Spec{Image: "test/echo", Name: "one"})

	wantErr(t, "update with negative CPU", rt.Update(ctx, "three", gantry.Resources{CPU: -1}), gantry.ErrInvalidArgument)
	res := gantry.Resources{CPU: 1.5, MemoryBytes: 64 << 20}
	if err := rt.Update(ctx, "three", res); err != nil {
		t.Fatal(err)
	}
	if got, _ := rt.Inspect(ctx, "three"); got.Spec.Resources != res {
		t.Errorf("resources %+v, want %+v", got.Spec.Resources, res)
	}
}

func TestGoAttach(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/stdin", OpenStdin: true})
	waitForLine(t, rt, c.ID, "ready")
	var out bytes.Buffer
	if err := rt.Attach(ctx, c.ID, gantry.AttachOptions{Stdin: strings.NewReader("one\ntwo\n"), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "one\ntwo\n" {
		t.Errorf("attach output %q: want the lines written after attaching", out.String())
	}
	if st := wait(t, rt, c.ID); st.ExitCode != 0 {
		t.Errorf("exit %+v", st)
	}
	wantErr(t, "attach to an exited container", rt.Attach(ctx, c.ID, gantry.AttachOptions{}), gantry.ErrConflict)
	d := start(t, rt, gantry.Spec{Image: "test/noexec"})
	wantErr(t, "stdin without OpenStdin", rt.Attach(ctx, d.ID, gantry.AttachOptions{Stdin: strings.NewReader("x")}), gantry.ErrInvalidArgument)
	actx, cancel := context.WithCancel(ctx)
	cancel()
	wantErr(t, "attach with a cancelled context", rt.Attach(actx, d.ID, gantry.AttachOptions{}), context.Canceled)
}

func TestGoTopStats(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/noexec", Cmd: []string{"serve", "--port=1"}})
	top, err := rt.Top(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := gantry.TopResult{Titles: []string{"PID", "PPID", "STAT", "CMD"}, Processes: [][]string{{"1", "0", "R", "serve --port=1"}}}
	if diff := cmp.Diff(want, top); diff != "" {
		t.Errorf("top (-want +got):\n%s", diff)
	}
	st, err := rt.Stats(ctx, c.ID)
	if err != nil || st.PIDs != 1 || st.Time.IsZero() {
		t.Errorf("stats %+v, %v", st, err)
	}
	rt.Kill(ctx, c.ID, "")
	_, err = rt.Top(ctx, c.ID)
	wantErr(t, "top of an exited container", err, gantry.ErrConflict)
	if st, err := rt.Stats(ctx, c.ID); err != nil || st.PIDs != 0 {
		t.Errorf("stats of an exited container %+v, %v", st, err)
	}
}

func TestGoList(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	web := start(t, rt, gantry.Spec{Image: "test/noexec", Name: "web-1", Labels: map[string]string{"tier": "web", "team": "a"}})
	db := start(t, rt, gantry.Spec{Image: "test/echo", Name: "db-1", Labels: map[string]string{"tier": "db"}})
	wait(t, rt, db.ID)
	idle := create(t, rt, gantry.Spec{Image: "test/echo:latest", Name: "idle", Labels: map[string]string{"tier": "web"}})
	names := func(opts gantry.ListOptions) []string {
		t.Helper()
		cs, err := rt.List(ctx, opts)
		if err != nil {
			t.Fatalf("list %+v: %v", opts, err)
		}
		out := []string{}
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	for _, tc := range []struct {
		opts gantry.ListOptions
		want []string
	}{
		{gantry.ListOptions{}, []string{"web-1"}},
		{gantry.ListOptions{All: true}, []string{"idle", "db-1", "web-1"}},
		{gantry.ListOptions{All: true, Limit: 2}, []string{"idle", "db-1"}},
		// docker ps -n 2: a Limit lists the newest in any state.
		{gantry.ListOptions{Limit: 2}, []string{"idle", "db-1"}},
		{gantry.ListOptions{Status: []gantry.Status{gantry.StatusExited, gantry.StatusCreated}}, []string{"idle", "db-1"}},
		{gantry.ListOptions{All: true, Labels: []string{"tier=web"}}, []string{"idle", "web-1"}},
		{gantry.ListOptions{All: true, Labels: []string{"tier=web", "team"}}, []string{"web-1"}},
		{gantry.ListOptions{All: true, Names: []string{"-1"}}, []string{"db-1", "web-1"}},
		{gantry.ListOptions{All: true, IDs: []string{idle.ID[:10], web.ID}}, []string{"idle", "web-1"}},
		{gantry.ListOptions{All: true, Image: "test/echo"}, []string{"idle", "db-1"}},
	} {
		if diff := cmp.Diff(tc.want, names(tc.opts)); diff != "" {
			t.Errorf("list %+v (-want +got):\n%s", tc.opts, diff)
		}
	}
	_, err := rt.List(ctx, gantry.ListOptions{Labels: []string{"=x"}})
	wantErr(t, "empty label key", err, gantry.ErrInvalidArgument)
}

func TestGoSecretsAndEnv(t *testing.T) {
	rt := fake.New(fake.WithSecret("db-password", "hunter2"), fake.WithImage("test/env:1", fake.Image{Run: func(ctx context.Context, p *fake.Process) int {
		fmt.Fprintln(p.Stdout, strings.Join(p.Env, " "))
		return 0
	}}))
	defer rt.Close()
	c := start(t, rt, gantry.Spec{Image: "test/env:1", Env: []string{"A=1"}, Secrets: []gantry.Secret{{Name: "db-password", Env: "PW"}}})
	wait(t, rt, c.ID)
	if got := texts(entries(t, rt, c.ID, gantry.LogsOptions{})); !cmp.Equal(got, []string{"stdout:A=1 PW=hunter2"}) {
		t.Errorf("env %q", got)
	}
	_, err := rt.Create(context.Background(), gantry.Spec{Image: "test/env:1", Secrets: []gantry.Secret{{Name: "db-password", Path: "/run/pw"}}})
	wantErr(t, "secret as a file", err, gantry.ErrNotSupported)
}

func TestGoConcurrent(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			c, err := rt.Create(ctx, gantry.Spec{Image: "test/echo", Cmd: []string{fmt.Sprint(i)}, Env: []string{fmt.Sprintf("EXIT=%d", i)}})
			if err == nil {
				err = rt.Start(ctx, c.ID)
			}
			if err != nil {
				errs <- err
				return
			}
			st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
			if err == nil && st.ExitCode != i {
				err = fmt.Errorf("container %d exited %d", i, st.ExitCode)
			}
			if err == nil {
				err = rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cs, _ := rt.List(ctx, gantry.ListOptions{All: true}); len(cs) != 0 {
		t.Errorf("%d containers left", len(cs))
	}
}

func TestGoClose(t *testing.T) {
	rt, _ := newGo(t)
	ctx := context.Background()
	c := start(t, rt, gantry.Spec{Image: "test/ignore:1"})
	created := create(t, rt, gantry.Spec{Image: "test/echo"})
	removed := registered(t, ctx, rt, created.ID, gantry.WaitRemoved)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "removed waiter at Close", (<-removed).Err, gantry.ErrClosed)
	_, err := rt.Inspect(ctx, c.ID)
	wantErr(t, "inspect after close", err, gantry.ErrClosed)
	if err := rt.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestCapabilities(t *testing.T) {
	for name, rt := range map[string]*fake.Runtime{"go": fake.New(), "host": fake.New(fake.WithHostProcesses())} {
		caps := rt.Capabilities()
		for _, f := range gantry.Features() {
			c, ok := caps[f]
			if !ok || c.Note == "" {
				t.Errorf("%s: feature %s has no row or no note", name, f)
			}
		}
		if len(caps) != len(gantry.Features()) {
			t.Errorf("%s: %d rows for %d features", name, len(caps), len(gantry.Features()))
		}
		var rtI gantry.Runtime = rt
		for _, ok := range []bool{
			implements[gantry.Restarter](rtI), implements[gantry.Pauser](rtI), implements[gantry.Renamer](rtI),
			implements[gantry.Updater](rtI), implements[gantry.Attacher](rtI), implements[gantry.ProcessLister](rtI),
			implements[gantry.StatsReader](rtI),
		} {
			if !ok {
				t.Errorf("%s: an optional interface is missing", name)
			}
		}
		rt.Close()
	}
}

func implements[I any](v any) bool {
	_, ok := v.(I)
	return ok
}
