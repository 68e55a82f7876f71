package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

func setRestartDelay(t *testing.T, d time.Duration) {
	old := restartDelay
	restartDelay = d
	t.Cleanup(func() { restartDelay = old })
}

// TestNextDelay: Docker's delays, 100 ms doubling up to a minute, and
// back to 100 ms after a run of 10 s.
func TestNextDelay(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 12 {
		d = nextDelay(d, time.Second)
		got = append(got, d)
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	if d := nextDelay(60*time.Second, 10*time.Second); d != 100*time.Millisecond {
		t.Errorf("after a run of 10 s the delay is %v, want 100ms", d)
	}
	if d := nextDelay(400*time.Millisecond, 10*time.Second-time.Nanosecond); d != 800*time.Millisecond {
		t.Errorf("after a run just short of 10 s the delay is %v, want 800ms", d)
	}
}

// counted is a script that counts its runs in a file and exits with the
// code for its run number (1-based) from codes, the last one
// repeating; a code of -1 sleeps instead, until signalled.
func counted(t *testing.T, codes ...int) ([]string, string) {
	file := filepath.Join(t.TempDir(), "runs")
	var sb strings.Builder
	// The trap comes first, so that a run counted is one a SIGTERM
	// makes exit 5.
	sb.WriteString(`trap 'exit 5' TERM; n=$(cat ` + file + ` 2>/dev/null || echo 0); n=$((n+1)); echo $n > ` + file + `; echo "run $n"; echo "err $n" >&2; case $n in `)
	for i, c := range codes[:len(codes)-1] {
		sb.WriteString(strconv.Itoa(i+1) + `) ` + action(c) + `;; `)
	}
	sb.WriteString(`*) ` + action(codes[len(codes)-1]) + `;; esac`)
	return []string{"sh", "-c", sb.String()}, file
}

func action(code int) string {
	if code < 0 {
		return `while :; do sleep 0.01; done`
	}
	return "exit " + strconv.Itoa(code)
}

func runs(t *testing.T, file string) int {
	b, _ := os.ReadFile(file)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func TestRestartPolicies(t *testing.T) {
	setRestartDelay(t, time.Millisecond)
	for _, tc := range []struct {
		name     string
		policy   gantry.RestartPolicy
		codes    []int
		restarts int
		code     int
	}{
		{"no", gantry.RestartPolicy{Name: "no"}, []int{3}, 0, 3},
		{"empty", gantry.RestartPolicy{}, []int{3}, 0, 3},
		{"on-failure after success", gantry.RestartPolicy{Name: "on-failure"}, []int{0}, 0, 0},
		{"on-failure until success", gantry.RestartPolicy{Name: "on-failure"}, []int{1, 2, 3, 0}, 3, 0},
		{"on-failure:2", gantry.RestartPolicy{Name: "on-failure", MaxRetries: 2}, []int{3}, 2, 3},
		{"on-failure:2 succeeds", gantry.RestartPolicy{Name: "on-failure", MaxRetries: 2}, []int{3, 0}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, file := counted(t, tc.codes...)
			out, errb := &syncBuffer{}, &syncBuffer{}
			a := startAgent(t, Config{Cmd: cmd, Restart: tc.policy, Stdout: out, Stderr: errb, Record: true})
			res := a.Wait()
			st := a.Status()
			if res.ExitCode != tc.code || st.RestartCount != tc.restarts || runs(t, file) != tc.restarts+1 {
				t.Errorf("exit %d after %d restarts and %d runs; want %d after %d", res.ExitCode, st.RestartCount, runs(t, file), tc.code, tc.restarts)
			}
			if st.State != StateExited || st.ExitCode != tc.code {
				t.Errorf("status %+v", st)
			}
			// One record for the agent's life, counting every run's lines.
			var want strings.Builder
			for i := 1; i <= tc.restarts+1; i++ {
				want.WriteString("run " + strconv.Itoa(i) + "\n")
			}
			if out.String() != want.String() {
				t.Errorf("stdout %q, want %q", out.String(), want.String())
			}
			i := strings.LastIndex(strings.TrimSuffix(errb.String(), "\n"), "\n") + 1
			r, err := ParseRecord([]byte(errb.String()[i:]))
			if err != nil || strings.Count(errb.String(), "gantryAgentRecord") != 1 {
				t.Fatalf("stderr %q: %v", errb.String(), err)
			}
			n := int64(tc.restarts + 1)
			if r.ExitCode != tc.code || r.Restarts != tc.restarts || r.StdoutLines != n || r.StderrLines != n || !r.StartedAt.Equal(st.StartedAt) || !r.FinishedAt.Equal(st.FinishedAt) {
				t.Errorf("record %+v; want exit %d, %d restarts, %d lines on each stream, the last run's times", r, tc.code, tc.restarts, n)
			}
		})
	}
}

// TestRestartAlways: always and unless-stopped restart after every exit,
// success or not, until the main command is signalled; then, though it
// exits with a code of its own, it is not restarted.
func TestRestartAlways(t *testing.T) {
	setRestartDelay(t, time.Millisecond)
	for _, name := range []string{"always", "unless-stopped"} {
		t.Run(name, func(t *testing.T) {
			cmd, file := counted(t, 0, 1, 0, -1)
			a := startAgent(t, Config{Cmd: cmd, Restart: gantry.RestartPolicy{Name: name}})
			waitFor(t, "the fourth run", func() bool { return runs(t, file) == 4 })
			st := a.Status()
			if st.State != StateRunning || st.RestartCount != 3 || st.ExitCode != 0 {
				t.Fatalf("status %+v, want running after 3 restarts, the last exit 0", st)
			}
			a.Signal(syscall.SIGTERM)
			if res := a.Wait(); res.ExitCode != 5 || res.Signal != "" {
				t.Errorf("Wait = %+v, want the trap's exit 5", res)
			}
			if st := a.Status(); st.RestartCount != 3 || runs(t, file) != 4 {
				t.Errorf("restarted after the signal: %+v, %d runs", st, runs(t, file))
			}
		})
	}
}

// TestNoRestartAfterSignal: a main command signalled through the agent
// in any way is not restarted, even by always, and even if it exits
// with a failure later.
func TestNoRestartAfterSignal(t *testing.T) {
	setRestartDelay(t, time.Millisecond)
	for _, how := range []string{"Agent.Signal", "Client.Signal", "attach"} {
		t.Run(how, func(t *testing.T) {
			cmd, file := counted(t, 1, -1)
			a := startAgent(t, Config{Cmd: cmd, Restart: gantry.RestartPolicy{Name: "always"}})
			cl := dialForward(t, a)
			waitFor(t, "the second run", func() bool { return runs(t, file) == 2 && a.Status().State == StateRunning })
			switch how {
			case "Agent.Signal":
				a.Signal(syscall.SIGTERM)
			case "Client.Signal":
				if err := cl.Signal(context.Background(), "TERM"); err != nil {
					t.Fatal(err)
				}
			case "attach":
				sess := attachSession(t, cl, &openRequest{}, nil, nil, nil)
				if err := sess.Signal("TERM"); err != nil {
					t.Fatal(err)
				}
				if res, err := sess.Wait(); err != nil || res.ExitCode != 5 {
					t.Errorf("the attach ended %+v, %v; want the run's exit 5", res, err)
				}
			}
			if res := a.Wait(); res.ExitCode != 5 {
				t.Errorf("Wait = %+v, want 5", res)
			}
			if st := a.Status(); st.RestartCount != 1 || runs(t, file) != 2 {
				t.Errorf("status %+v after %d runs, want 1 restart", st, runs(t, file))
			}
		})
	}
}

// TestSignalCallsOffRestart: a signal while a restart is pending ends
// the agent with the last run's exit code, as docker stop of a
// restarting container; meanwhile the state is restarting and attaching
// is a conflict.
func TestSignalCallsOffRestart(t *testing.T) {
	setRestartDelay(t, time.Hour)
	for _, how := range []string{"Agent.Signal", "Client.Signal"} {
		t.Run(how, func(t *testing.T) {
			a := startAgent(t, Config{Cmd: []string{"sh", "-c", "exit 3"}, Restart: gantry.RestartPolicy{Name: "on-failure"}})
			cl := dialForward(t, a)
			waitFor(t, "restarting", func() bool { return a.Status().State == StateRestarting })
			st, err := cl.Status(context.Background())
			if err != nil || st.State != StateRestarting || st.RestartCount != 1 || st.ExitCode != 3 {
				t.Fatalf("Status = %+v, %v; want restarting, 1 restart, exit 3", st, err)
			}
			if _, err := cl.Attach(context.Background(), gantry.AttachOptions{}); !errors.Is(err, gantry.ErrConflict) {
				t.Errorf("attach while restarting: %v, want a conflict", err)
			}
			if how == "Agent.Signal" {
				a.Signal(syscall.SIGKILL)
			} else if err := cl.Signal(context.Background(), "KILL"); err != nil {
				t.Fatal(err)
			}
			if res := a.Wait(); res.ExitCode != 3 || res.Signal != "" {
				t.Errorf("Wait = %+v, want the last exit, 3", res)
			}
			if st := a.Status(); st.State != StateExited || st.RestartCount != 1 {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// TestAttachEndsWithItsRun: an attached session ends with the run it
// attached to, with that run's exit code; the next run takes a new one,
// with a fresh input (and, with Tty, a fresh terminal). Exec sessions
// carry on across restarts.
func TestAttachEndsWithItsRun(t *testing.T) {
	setRestartDelay(t, time.Millisecond)
	for _, tty := range []bool{false, true} {
		t.Run("tty="+strconv.FormatBool(tty), func(t *testing.T) {
			a := startAgent(t, Config{Cmd: []string{"sh", "-c", `read l; echo "got $l"; exit 3`}, OpenStdin: true, Tty: tty,
				Restart: gantry.RestartPolicy{Name: "on-failure", MaxRetries: 1}})
			cl := dialForward(t, a)
			execDone := make(chan error, 1)
			pr, pw := io.Pipe()
			go func() {
				res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"cat"}, Stdin: pr})
				if err == nil && res.ExitCode != 0 {
					err = errors.New("exit " + strconv.Itoa(res.ExitCode))
				}
				execDone <- err
			}()
			for i, line := range []string{"a", "b"} {
				waitFor(t, "run "+strconv.Itoa(i+1), func() bool {
					st := a.Status()
					return st.State == StateRunning && st.RestartCount == i
				})
				var out syncBuffer
				res, err := cl.Attach(context.Background(), gantry.AttachOptions{Stdin: strings.NewReader(line + "\n"), Stdout: &out})
				if err != nil || res.ExitCode != 3 || !strings.Contains(out.String(), "got "+line) {
					t.Fatalf("attach %d = %+v, %v, output %q; want exit 3 and got %s", i+1, res, err, out.String(), line)
				}
			}
			if res := a.Wait(); res.ExitCode != 3 || a.Status().RestartCount != 1 {
				t.Errorf("Wait = %+v, status %+v", res, a.Status())
			}
			select {
			case err := <-execDone:
				t.Fatalf("the exec ended with the main command: %v", err)
			default:
			}
			pw.Close()
			if err := <-execDone; err != nil {
				t.Errorf("exec: %v", err)
			}
		})
	}
}

// TestRestartThatCannotStart: a restart whose command is gone ends the
// agent with 127 and the reason on stderr.
func TestRestartThatCannotStart(t *testing.T) {
	setRestartDelay(t, time.Millisecond)
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	os.WriteFile(prog, []byte("#!/bin/sh\nrm \"$0\"\nexit 1\n"), 0o755)
	var errb syncBuffer
	a := startAgent(t, Config{Cmd: []string{prog}, Stderr: &errb, Restart: gantry.RestartPolicy{Name: "always"}})
	if res := a.Wait(); res.ExitCode != 127 || !strings.Contains(errb.String(), "no such file") {
		t.Errorf("Wait = %+v, stderr %q; want 127 and why", res, errb.String())
	}
	if st := a.Status(); st.RestartCount != 1 || st.State != StateExited || st.ExitCode != 127 {
		t.Errorf("status %+v", st)
	}
}

// TestGate: with Gate the main command waits for StartMain; meanwhile
// the state is created, exec works, and attach and a controller's
// signal are conflicts. StartMain starts it once; later calls do
// nothing.
func TestGate(t *testing.T) {
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			out := &syncBuffer{}
			a := startAgent(t, Config{ID: "c1", Cmd: []string{"sh", "-c", "echo started; exit 4"}, Gate: true, Stdout: out})
			cl := m.dial(t, a)
			ctx := context.Background()
			st, err := cl.Status(ctx)
			if err != nil || st.State != StateCreated || !st.StartedAt.IsZero() || st.Health != nil {
				t.Fatalf("Status = %+v, %v; want created", st, err)
			}
			var eo syncBuffer
			if res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"echo", "exec"}, Stdout: &eo}); err != nil || res.ExitCode != 0 || eo.String() != "exec\n" {
				t.Errorf("exec before the start: %+v, %v, %q", res, err, eo.String())
			}
			if _, err := cl.Attach(ctx, gantry.AttachOptions{}); !errors.Is(err, gantry.ErrConflict) {
				t.Errorf("attach before the start: %v, want a conflict", err)
			}
			if err := cl.Signal(ctx, "TERM"); !errors.Is(err, gantry.ErrConflict) {
				t.Errorf("signal before the start: %v, want a conflict", err)
			}
			if out.String() != "" {
				t.Fatalf("the main command ran before StartMain: %q", out.String())
			}
			if err := cl.StartMain(ctx); err != nil {
				t.Fatalf("StartMain: %v", err)
			}
			if res := a.Wait(); res.ExitCode != 4 || out.String() != "started\n" {
				t.Errorf("Wait = %+v, stdout %q", res, out.String())
			}
			if err := cl.StartMain(ctx); err != nil {
				t.Errorf("StartMain once it has run: %v", err)
			}
			if out.String() != "started\n" {
				t.Errorf("a second StartMain ran it again: %q", out.String())
			}
			st, err = cl.Status(ctx)
			if err != nil || st.State != StateExited || st.ExitCode != 4 || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
				t.Errorf("Status = %+v, %v", st, err)
			}
		})
	}
}

// TestGateStartFails: StartMain of a command that cannot start says why
// and the agent ends with 127.
func TestGateStartFails(t *testing.T) {
	a := startAgent(t, Config{Cmd: []string{"no-such-command-xyz"}, Gate: true})
	cl := dialForward(t, a)
	err := cl.StartMain(context.Background())
	if !errors.Is(err, gantry.ErrNotFound) || strings.Count(err.Error(), "not found") != 2 || !strings.Contains(err.Error(), "no-such-command-xyz") {
		t.Errorf("StartMain: %v, want not found naming the command", err)
	}
	if res := a.Wait(); res.ExitCode != 127 {
		t.Errorf("Wait = %+v, want 127", res)
	}
}

// TestGateCalledOff: a terminating signal from outside before StartMain
// ends the agent as if the command had been killed by it; one that ends
// no process is a conflict, and so is a controller's.
func TestGateCalledOff(t *testing.T) {
	var errb syncBuffer
	a := startAgent(t, Config{Cmd: []string{"true"}, Gate: true, Record: true, Stderr: &errb})
	if err := a.Signal(syscall.SIGWINCH); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("SIGWINCH before the start: %v, want a conflict", err)
	}
	if err := a.signal(syscall.SIGTERM, true); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("a controller's SIGTERM before the start: %v, want a conflict", err)
	}
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := a.Wait(); res.ExitCode != 143 || res.Signal != "SIGTERM" {
		t.Errorf("Wait = %+v, want 143 by SIGTERM", res)
	}
	if err := a.StartMain(); err != nil {
		t.Errorf("StartMain after: %v", err)
	}
	r, err := ParseRecord([]byte(errb.String()))
	if err != nil || r.ExitCode != 143 || r.Signal != 15 || !r.StartedAt.IsZero() {
		t.Errorf("record %+v, %v", r, err)
	}
}

// TestStatus: Status over the wire reports the state, restarts, last
// exit and times as the agent knows them.
func TestStatus(t *testing.T) {
	setRestartDelay(t, time.Millisecond)
	cmd, file := counted(t, 2, -1)
	a := startAgent(t, Config{Cmd: cmd, Restart: gantry.RestartPolicy{Name: "on-failure"}})
	cl := dialForward(t, a)
	waitFor(t, "the second run", func() bool { return runs(t, file) == 2 && a.Status().State == StateRunning })
	st, err := cl.Status(context.Background())
	want := a.Status()
	if err != nil || st.State != StateRunning || st.RestartCount != 1 || st.ExitCode != 2 || st.Signal != "" ||
		!st.StartedAt.Equal(want.StartedAt) || !st.FinishedAt.Equal(want.FinishedAt) || !st.StartedAt.After(st.FinishedAt) {
		t.Fatalf("Status = %+v, %v; the agent says %+v", st, err, want)
	}
	cl.Signal(context.Background(), "KILL")
	a.Wait()
	st = a.Status()
	if st.State != StateExited || st.ExitCode != 137 || st.Signal != "SIGKILL" || st.RestartCount != 1 {
		t.Errorf("status %+v, want exited by SIGKILL", st)
	}
}

func TestOpenStartStatusSignalFields(t *testing.T) {
	for _, bad := range []openRequest{
		{Kind: "start", Cmd: []string{"x"}, Window: MinWindow},
		{Kind: "status", Stdin: true, Window: MinWindow},
		{Kind: "status", Port: 80, Window: MinWindow},
		{Kind: "signal", Window: MinWindow},
		{Kind: "signal", Signal: 65, Window: MinWindow},
		{Kind: "exec", Cmd: []string{"x"}, Signal: 9, Window: MinWindow},
	} {
		if bad.validate() == nil {
			t.Errorf("OPEN %+v validates", bad)
		}
	}
	for _, good := range []openRequest{
		{Kind: "start", Window: MinWindow},
		{Kind: "status", Window: MinWindow},
		{Kind: "signal", Signal: 9, Window: MinWindow},
	} {
		if err := good.validate(); err != nil {
			t.Errorf("OPEN %+v: %v", good, err)
		}
	}
}

func TestStartRefusesBadPolicies(t *testing.T) {
	for _, cfg := range []Config{
		{Cmd: []string{"true"}, Secret: testSecret, Restart: gantry.RestartPolicy{Name: "sometimes"}},
		{Cmd: []string{"true"}, Secret: testSecret, Restart: gantry.RestartPolicy{Name: "always", MaxRetries: 2}},
		{Cmd: []string{"true"}, Secret: testSecret, Healthcheck: &gantry.Healthcheck{}},
		{Cmd: []string{"true"}, Secret: testSecret, Healthcheck: &gantry.Healthcheck{HTTPPath: "/"}, Env: []string{}},
		{Cmd: []string{"true"}, PassThrough: true, Gate: true},
	} {
		if a, err := Start(cfg); !errors.Is(err, gantry.ErrInvalidArgument) {
			if a != nil {
				a.Wait()
			}
			t.Errorf("Start(%+v) = %v, want invalid argument", cfg, err)
		}
	}
}
