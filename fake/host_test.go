package fake_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

func newHost(t *testing.T) *fake.Runtime {
	t.Helper()
	rt := fake.New(fake.WithHostProcesses())
	t.Cleanup(func() { rt.Close() })
	return rt
}

// runSh creates and starts a host container running script with sh -c.
func runSh(t *testing.T, rt *fake.Runtime, script string, mod ...func(*gantry.Spec)) *gantry.Container {
	t.Helper()
	spec := gantry.Spec{Image: "alpine:3", Cmd: []string{"sh", "-c", script}}
	for _, m := range mod {
		m(&spec)
	}
	c, err := rt.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := rt.Start(context.Background(), c.ID); err != nil {
		t.Fatalf("start: %v", err)
	}
	return c
}

// waitForLine follows the container's logs until a line equal to want.
func waitForLine(t *testing.T, rt gantry.Runtime, id, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := rt.Logs(ctx, id, gantry.LogsOptions{Follow: true})
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer r.Close()
	for {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("waiting for line %q: %v", want, err)
		}
		if e.Line == want {
			return
		}
	}
}

func output(t *testing.T, rt gantry.Runtime, id string, opts gantry.LogsOptions) (string, string) {
	t.Helper()
	r, err := rt.Logs(context.Background(), id, opts)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	var o, e bytes.Buffer
	if err := gantry.CopyLogs(&o, &e, r); err != nil {
		t.Fatalf("copy logs: %v", err)
	}
	return o.String(), e.String()
}

func TestHostLifecycle(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	c := runSh(t, rt, "echo out; echo err >&2; printf partial; exit 3")
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(gantry.ExitStatus{ExitCode: 3}, st); diff != "" {
		t.Errorf("exit status (-want +got):\n%s", diff)
	}
	o, e := output(t, rt, c.ID, gantry.LogsOptions{})
	if o != "out\npartial" || e != "err\n" {
		t.Errorf("stdout %q, stderr %q", o, e)
	}
	in, err := rt.Inspect(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	if in.State.Status != gantry.StatusExited || in.State.Running || in.State.ExitCode != 3 {
		t.Errorf("state %+v", in.State)
	}
	if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Inspect(ctx, c.ID); !errors.Is(err, gantry.ErrNotFound) {
		t.Errorf("inspect after remove: %v, want ErrNotFound", err)
	}
}

func TestHostNoCommand(t *testing.T) {
	rt := newHost(t)
	_, err := rt.Create(context.Background(), gantry.Spec{Image: "alpine"})
	if !errors.Is(err, gantry.ErrInvalidArgument) || !strings.Contains(err.Error(), "no command specified") {
		t.Fatalf("create without a command: %v", err)
	}
	list, err := rt.List(context.Background(), gantry.ListOptions{All: true})
	if err != nil || len(list) != 0 {
		t.Fatalf("list after refused create: %d containers, %v", len(list), err)
	}
}

func TestHostMissingCommand(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	c, err := rt.Create(ctx, gantry.Spec{Image: "alpine", Cmd: []string{"/no/such/command"}})
	if err != nil {
		t.Fatal(err)
	}
	// Under an init the start succeeds and the container exits 127, with
	// the reason on stderr.
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatalf("start of a missing command: %v", err)
	}
	if st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil || st.ExitCode != 127 {
		t.Fatalf("wait: %+v, %v; want exit 127", st, err)
	}
	in, _ := rt.Inspect(ctx, c.ID)
	if in.State.Status != gantry.StatusExited || in.State.ExitCode != 127 || in.State.Error == "" {
		t.Errorf("state after a command that could not run: %+v", in.State)
	}
	if _, e := output(t, rt, c.ID, gantry.LogsOptions{}); !strings.Contains(e, "/no/such/command") {
		t.Errorf("stderr %q does not name the command", e)
	}
}

func TestHostStopTrapped(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	c := runSh(t, rt, "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.01; done")
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: new(10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	in, _ := rt.Inspect(ctx, c.ID)
	if in.State.Status != gantry.StatusExited || in.State.ExitCode != 0 || in.State.Signal != "" {
		t.Errorf("state after stop: %+v", in.State)
	}
	if o, _ := output(t, rt, c.ID, gantry.LogsOptions{}); o != "ready\ngot TERM\n" {
		t.Errorf("stdout %q", o)
	}
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{}); err != nil {
		t.Errorf("stop of a stopped container: %v", err)
	}
}

func TestHostStopSignalExitCodes(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		script  string
		opts    gantry.StopOptions
		code    int
		signal  string
		comment string
	}{
		{"term", "echo ready; exec sleep 60", gantry.StopOptions{Timeout: new(10 * time.Second)}, 143, "SIGTERM", "the default stop signal kills sleep"},
		{"ignored", "trap '' TERM; echo ready; while :; do sleep 0.01; done", gantry.StopOptions{Timeout: new(50 * time.Millisecond)}, 137, "SIGKILL", "SIGTERM ignored: SIGKILL after the timeout"},
		{"zero", "trap '' TERM; echo ready; while :; do sleep 0.01; done", gantry.StopOptions{Timeout: new(time.Duration(0))}, 137, "SIGKILL", "zero timeout kills at once"},
		{"signal", "echo ready; exec sleep 60", gantry.StopOptions{Signal: "SIGINT", Timeout: new(10 * time.Second)}, 130, "SIGINT", "StopOptions.Signal replaces SIGTERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := runSh(t, rt, tc.script)
			waitForLine(t, rt, c.ID, "ready")
			if err := rt.Stop(ctx, c.ID, tc.opts); err != nil {
				t.Fatal(err)
			}
			st, _ := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
			if st.ExitCode != tc.code || st.Signal != tc.signal {
				t.Errorf("%s: got %+v, want %d %s", tc.comment, st, tc.code, tc.signal)
			}
		})
	}
}

func TestHostKillReachesTheGroup(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	// The child prints its PID and sleeps; the group signal must end it
	// as well as the shell.
	c := runSh(t, rt, "sleep 60 & echo $!; echo ready; wait")
	waitForLine(t, rt, c.ID, "ready")
	o, _ := output(t, rt, c.ID, gantry.LogsOptions{Tail: 2})
	child, err := strconv.Atoi(strings.Fields(o)[0])
	if err != nil {
		t.Fatalf("child pid from %q: %v", o, err)
	}
	if err := rt.Kill(ctx, c.ID, "TERM"); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil || st.ExitCode != 143 || st.Signal != "SIGTERM" {
		t.Errorf("after kill -TERM: %+v, %v; want 143 SIGTERM", st, err)
	}
	if alive(child) {
		t.Errorf("child %d still runs after the group was signalled", child)
	}
}

func TestHostKillDefaultAndNonFatal(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	c := runSh(t, rt, "trap 'echo usr1' USR1; echo ready; while :; do sleep 0.01; done")
	waitForLine(t, rt, c.ID, "ready")
	if err := rt.Kill(ctx, c.ID, "SIGUSR1"); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, rt, c.ID, "usr1")
	if in, _ := rt.Inspect(ctx, c.ID); !in.State.Running {
		t.Fatalf("a trapped SIGUSR1 stopped the container: %+v", in.State)
	}
	if err := rt.Kill(ctx, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	in, _ := rt.Inspect(ctx, c.ID)
	if in.State.Status != gantry.StatusExited || in.State.ExitCode != 137 || in.State.Signal != "SIGKILL" {
		t.Errorf("state after kill: %+v", in.State)
	}
	if err := rt.Kill(ctx, c.ID, ""); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("kill of an exited container: %v, want ErrConflict", err)
	}
}

// TestHostCloseLeavesNoProcess starts containers whose processes ignore
// SIGTERM and fork children, closes the runtime, and checks that every
// process is gone.
func TestHostCloseLeavesNoProcess(t *testing.T) {
	rt := fake.New(fake.WithHostProcesses())
	var pids []int
	for range 5 {
		c := runSh(t, rt, "trap '' TERM; sleep 60 & echo $!; echo $$; echo ready; wait")
		waitForLine(t, rt, c.ID, "ready")
		o, _ := output(t, rt, c.ID, gantry.LogsOptions{})
		for _, f := range strings.Fields(o)[:2] {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("pid %q: %v", f, err)
			}
			pids = append(pids, pid)
		}
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	if _, err := rt.Create(context.Background(), gantry.Spec{Image: "alpine", Cmd: []string{"true"}}); !errors.Is(err, gantry.ErrClosed) {
		t.Errorf("create after close: %v, want ErrClosed", err)
	}
}

// alive reports whether process pid exists and is not a zombie: an
// orphan killed with its group is reaped by init in its own time.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || !bytes.HasPrefix(stat[i+1:], []byte(" Z"))
}

func TestHostEnvWorkdirAndExitCodes(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	dir := t.TempDir()
	c := runSh(t, rt, `echo "$GREETING"; pwd; exit 42`, func(s *gantry.Spec) {
		s.Env = []string{"GREETING=hello world"}
		s.WorkingDir = dir
	})
	st, _ := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if st.ExitCode != 42 {
		t.Errorf("exit code %d, want 42", st.ExitCode)
	}
	if o, _ := output(t, rt, c.ID, gantry.LogsOptions{}); o != "hello world\n"+dir+"\n" {
		t.Errorf("stdout %q", o)
	}
}

func TestHostHostname(t *testing.T) {
	rt := newHost(t)
	c := runSh(t, rt, `echo "$HOSTNAME"`)
	rt.Wait(context.Background(), c.ID, gantry.WaitNotRunning)
	if o, _ := output(t, rt, c.ID, gantry.LogsOptions{}); o != c.ID[:12]+"\n" {
		t.Errorf("HOSTNAME %q, want the short ID", o)
	}
}

func TestHostNotLeakingOwnEnv(t *testing.T) {
	t.Setenv("FAKE_TEST_SECRET_OF_THE_HOST", "x")
	rt := newHost(t)
	c := runSh(t, rt, `echo "[$FAKE_TEST_SECRET_OF_THE_HOST]"`)
	rt.Wait(context.Background(), c.ID, gantry.WaitNotRunning)
	if o, _ := output(t, rt, c.ID, gantry.LogsOptions{}); o != "[]\n" {
		t.Errorf("the host's environment leaked into the container: %q", o)
	}
	if os.Getenv("FAKE_TEST_SECRET_OF_THE_HOST") != "x" {
		t.Fatal("setenv did not take")
	}
}

func TestHostExec(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	dir := t.TempDir()
	c := runSh(t, rt, "echo ready; exec sleep 60", func(s *gantry.Spec) { s.Env = []string{"A=1"} })
	waitForLine(t, rt, c.ID, "ready")
	var o, e bytes.Buffer
	res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{
		Cmd:        []string{"sh", "-c", `read line; echo "$A $B $line"; pwd; echo oops >&2; exit 9`},
		Env:        []string{"B=2"},
		WorkingDir: dir,
		Stdin:      strings.NewReader("from stdin\n"),
		Stdout:     &o,
		Stderr:     &e,
	})
	if err != nil || res.ExitCode != 9 {
		t.Fatalf("exec: %+v, %v", res, err)
	}
	if o.String() != "1 2 from stdin\n"+dir+"\n" || e.String() != "oops\n" {
		t.Errorf("stdout %q, stderr %q", o.String(), e.String())
	}
	res, err = rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"sh", "-c", "kill -KILL $$"}})
	if err != nil || res.ExitCode != 137 || res.Signal != "SIGKILL" {
		t.Errorf("exec killed by a signal: %+v, %v", res, err)
	}
	var missing bytes.Buffer
	res, err = rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"/no/such/thing"}, Stdout: &missing})
	if err != nil || res.ExitCode != 127 || !strings.Contains(missing.String(), "/no/such/thing") {
		t.Errorf("exec of a missing command: %+v, %v, stdout %q; want 127 and the reason", res, err, missing.String())
	}
	res, err = rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"/"}})
	if err != nil || res.ExitCode != 126 {
		t.Errorf("exec of a directory: %+v, %v; want 126", res, err)
	}
}

func TestHostExecTTY(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	c := runSh(t, rt, "echo ready; exec sleep 60")
	waitForLine(t, rt, c.ID, "ready")
	var o bytes.Buffer
	resize := make(chan gantry.TerminalSize, 1)
	resize <- gantry.TerminalSize{Rows: 24, Cols: 91}
	res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{
		Cmd:    []string{"sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty; stty size; echo err >&2"},
		Tty:    true,
		Resize: resize,
		Stdout: &o,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("tty exec: %+v, %v", res, err)
	}
	if o.String() != "tty\r\n24 91\r\nerr\r\n" {
		t.Errorf("terminal output %q", o.String())
	}
}

func TestHostPauseTopStats(t *testing.T) {
	rt := newHost(t)
	ctx := context.Background()
	// "ready" comes once the child has exec'd sleep, so Top sees its
	// command line and not that of the forked shell.
	const script = `sleep 60 & until [ "$(tr '\0' ' ' </proc/$!/cmdline)" = "sleep 60 " ]; do :; done; echo ready; wait`
	c := runSh(t, rt, script)
	waitForLine(t, rt, c.ID, "ready")
	top, err := rt.Top(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, p := range top.Processes {
		cmds = append(cmds, p[len(p)-1])
	}
	if diff := cmp.Diff([]string{"sh -c " + script, "sleep 60"}, cmds); diff != "" {
		t.Errorf("top commands (-want +got):\n%s", diff)
	}
	if top.Processes[1][1] != top.Processes[0][0] {
		t.Errorf("sleep's PPID %s is not the shell's PID %s", top.Processes[1][1], top.Processes[0][0])
	}
	st, err := rt.Stats(ctx, c.ID)
	if err != nil || st.PIDs != 2 || st.MemoryBytes <= 0 {
		t.Errorf("stats %+v, %v", st, err)
	}
	if err := rt.Pause(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	top, _ = rt.Top(ctx, c.ID)
	for _, p := range top.Processes {
		if p[2] != "T" {
			t.Errorf("process %s is %s while paused, want T (stopped)", p[0], p[2])
		}
	}
	if err := rt.Unpause(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	top, _ = rt.Top(ctx, c.ID)
	for _, p := range top.Processes {
		if p[2] == "T" {
			t.Errorf("process %s still stopped after Unpause", p[0])
		}
	}
}

func TestHostTTYMain(t *testing.T) {
	rt := newHost(t)
	c := runSh(t, rt, "[ -t 1 ] && echo tty; echo err >&2", func(s *gantry.Spec) { s.Tty = true })
	wait(t, rt, c.ID)
	if got := texts(entries(t, rt, c.ID, gantry.LogsOptions{})); !cmp.Equal(got, []string{"stdout:tty", "stdout:err"}) {
		t.Errorf("terminal logs %q", got)
	}
}

func TestHostAttachStdin(t *testing.T) {
	rt := newHost(t)
	c := runSh(t, rt, "echo ready; while read l; do echo \"got $l\"; done; echo eof", func(s *gantry.Spec) { s.OpenStdin = true })
	waitForLine(t, rt, c.ID, "ready")
	var o bytes.Buffer
	if err := rt.Attach(context.Background(), c.ID, gantry.AttachOptions{Stdin: strings.NewReader("a\nb\n"), Stdout: &o}); err != nil {
		t.Fatal(err)
	}
	if o.String() != "got a\ngot b\neof\n" {
		t.Errorf("attach output %q", o.String())
	}
}
