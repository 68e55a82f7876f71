package runtimetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gantryhq/gantry"
)

// execOut runs cfg in id and returns its result and output.
func (s *suite) execOut(t *testing.T, rt gantry.Runtime, id string, cfg gantry.ExecConfig) (gantry.ExecResult, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cfg.Stdout, cfg.Stderr = &stdout, &stderr
	res, err := rt.Exec(s.ctx(t), id, cfg)
	if err != nil {
		t.Fatalf("Exec(%q): %v", cfg.Cmd, err)
	}
	return res, stdout.String(), stderr.String()
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func (s *suite) testExec(t *testing.T) {
	s.require(t, gantry.FeatureExec)
	rt := s.runtime(t)
	tag := newTag()
	spec := s.spec(tag, scriptForever)
	spec.Env = []string{"FROM_SPEC=spec", "SHARED=spec"}
	spec.WorkingDir = "/tmp"
	c := Start(t, rt, spec)
	RequireLog(t, rt, c.ID, "ready", s.patience)

	for _, code := range []int{0, 1, 3, 42, 255} {
		t.Run("ExitCode="+strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			res, _, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: sh("exit " + strconv.Itoa(code))})
			if res.ExitCode != code || res.Signal != "" {
				t.Errorf("exec result %+v, want exit code %d", res, code)
			}
		})
	}
	t.Run("CommandNotFound", func(t *testing.T) {
		// Docker completes the exec and writes why on its output; the call
		// itself succeeds. The exit code is 127 on moby's daemon since it
		// learnt to tell a missing command (translateContainerdStartErr),
		// 126 on Docker 20.10, which says 126 for any exec that cannot
		// start: either is Docker's.
		t.Parallel()
		res, stdout, stderr := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: []string{"no-such-command-runtimetest"}})
		if (res.ExitCode != 127 && res.ExitCode != 126) || !strings.Contains(stdout+stderr, "no-such-command-runtimetest") {
			t.Errorf("exec of a missing command: %+v, output %q; want exit 127 (or Docker 20.10's 126) and output naming the command", res, stdout+stderr)
		}
	})
	t.Run("KilledBySignal", func(t *testing.T) {
		t.Parallel()
		res, _, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: sh("kill -KILL $$")})
		if res.ExitCode != 137 || res.Signal != "SIGKILL" {
			t.Errorf("exec result %+v, want 137 SIGKILL", res)
		}
	})
	t.Run("SeparateOutput", func(t *testing.T) {
		t.Parallel()
		res, stdout, stderr := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: sh("echo out; echo err >&2; printf 'two\\nlines' ; exit 2")})
		if res.ExitCode != 2 || stdout != "out\ntwo\nlines" || stderr != "err\n" {
			t.Errorf("exec: code %d stdout %q stderr %q, want 2, %q, %q", res.ExitCode, stdout, stderr, "out\ntwo\nlines", "err\n")
		}
	})
	t.Run("Argv", func(t *testing.T) {
		t.Parallel()
		_, stdout, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: []string{"printf", "[%s]", "a b", "", "$HOME", "'q'"}})
		if want := "[a b][][$HOME]['q']"; stdout != want {
			t.Errorf("argv passed through as %q, want %q", stdout, want)
		}
	})
	t.Run("Env", func(t *testing.T) {
		t.Parallel()
		_, stdout, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{
			Cmd: sh(`echo "$FROM_SPEC $SHARED $FROM_EXEC"`),
			Env: []string{"SHARED=exec", "FROM_EXEC=exec"},
		})
		if want := "spec exec exec\n"; stdout != want {
			t.Errorf("exec environment printed %q, want %q (the container's, overridden by the exec's)", stdout, want)
		}
	})
	t.Run("WorkingDir", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ dir, want string }{{"", "/tmp\n"}, {"/", "/\n"}} {
			_, stdout, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: []string{"pwd"}, WorkingDir: tc.dir})
			if stdout != tc.want {
				t.Errorf("pwd with WorkingDir %q printed %q, want %q", tc.dir, stdout, tc.want)
			}
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		t.Parallel()
		in := "hello\nworld\n"
		_, stdout, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: []string{"cat"}, Stdin: strings.NewReader(in)})
		if stdout != in {
			t.Errorf("cat echoed %q, want %q", stdout, in)
		}
	})
	t.Run("StdinLarge", func(t *testing.T) {
		t.Parallel()
		in := strings.Repeat("0123456789abcdef", 1<<16)
		res, stdout, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: sh("wc -c"), Stdin: strings.NewReader(in)})
		if res.ExitCode != 0 || strings.TrimSpace(stdout) != strconv.Itoa(len(in)) {
			t.Errorf("wc -c of %d bytes of stdin printed %q (exit %d)", len(in), stdout, res.ExitCode)
		}
	})
	t.Run("NoStdin", func(t *testing.T) {
		t.Parallel()
		_, stdout, _ := s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: sh("if read -r line; then echo got; else echo eof; fi")})
		if stdout != "eof\n" {
			t.Errorf("read without Stdin printed %q, want eof", stdout)
		}
	})
	t.Run("NilWriters", func(t *testing.T) {
		t.Parallel()
		res, err := rt.Exec(s.ctx(t), c.ID, gantry.ExecConfig{Cmd: sh("echo out; echo err >&2; exit 4")})
		if err != nil || res.ExitCode != 4 {
			t.Errorf("Exec with nil writers: %+v, %v, want exit code 4", res, err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				var stdout bytes.Buffer
				res, err := rt.Exec(s.ctx(t), c.ID, gantry.ExecConfig{
					Cmd:    sh(fmt.Sprintf("echo %d; exit %d", i, 10+i)),
					Stdout: &stdout,
				})
				if err != nil || res.ExitCode != 10+i || stdout.String() != fmt.Sprintf("%d\n", i) {
					errs <- fmt.Errorf("exec %d: %+v %q %v, want exit %d", i, res, stdout.String(), err, 10+i)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("EmptyCmd", func(t *testing.T) {
		t.Parallel()
		if _, err := rt.Exec(s.ctx(t), c.ID, gantry.ExecConfig{}); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("Exec with no Cmd: %v, want ErrInvalidArgument", err)
		}
	})
	t.Run("NotInContainerLogs", func(t *testing.T) {
		rt := s.runtime(t)
		c := s.startReady(t, rt, newTag(), scriptForever)
		s.execOut(t, rt, c.ID, gantry.ExecConfig{Cmd: sh("echo exec-out; echo exec-err >&2")})
		s.stop(t, rt, c.ID, 0)
		wantLines(t, "container logs after an exec", lines(s.logs(t, rt, c.ID, gantry.LogsOptions{}), 0), []string{"ready"})
	})
	t.Run("NotRunning", func(t *testing.T) {
		t.Parallel()
		rt := s.runtime(t)
		created := s.create(t, rt, tag, "exit 0")
		exited := s.start(t, rt, tag, "exit 0")
		s.wait(t, rt, exited.ID, gantry.WaitNotRunning)
		for _, id := range []string{created.ID, exited.ID} {
			var stdout bytes.Buffer
			_, err := rt.Exec(s.ctx(t), id, gantry.ExecConfig{Cmd: sh("echo ran"), Stdout: &stdout})
			if !errors.Is(err, gantry.ErrConflict) || stdout.Len() != 0 {
				t.Errorf("Exec in a container that is not running: %v, output %q; want ErrConflict and no output", err, stdout.String())
			}
		}
	})
	t.Run("Tty", func(t *testing.T) {
		s.require(t, gantry.FeatureExecTTY)
		t.Parallel()
		res, stdout, stderr := s.execOut(t, rt, c.ID, gantry.ExecConfig{
			Cmd: sh("test -t 0 && test -t 1 && echo on-a-tty; echo to-stderr >&2"),
			Tty: true,
		})
		if res.ExitCode != 0 || !strings.Contains(stdout, "on-a-tty") || !strings.Contains(stdout, "to-stderr") || stderr != "" {
			t.Errorf("exec with Tty: code %d stdout %q stderr %q; want both lines on stdout", res.ExitCode, stdout, stderr)
		}
	})
}
