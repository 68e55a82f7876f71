package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestExecOutputAndExitCode(t *testing.T) {
	modes(t, Config{}, func(t *testing.T, a *Agent, cl *Client) {
		var out, errb bytes.Buffer
		res, err := cl.Exec(context.Background(), gantry.ExecConfig{
			Cmd:    []string{"sh", "-c", "echo out; echo err >&2; exit 3"},
			Stdout: &out,
			Stderr: &errb,
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(gantry.ExecResult{ExitCode: 3}, res); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		if out.String() != "out\n" || errb.String() != "err\n" {
			t.Errorf("stdout %q stderr %q, want \"out\\n\" and \"err\\n\"", out.String(), errb.String())
		}
	})
}

func TestExecEnvDirUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	a := startAgent(t, Config{Env: []string{"PATH=/usr/bin:/bin", "BASE=1", "FOO=old"}})
	cl := dialForward(t, a)
	var out bytes.Buffer
	res, err := cl.Exec(context.Background(), gantry.ExecConfig{
		Cmd:        []string{"sh", "-c", `echo "$BASE $FOO $HOME"; pwd; id -u; id -g`},
		Env:        []string{"FOO=new"},
		WorkingDir: "/tmp",
		User:       "nobody:65534",
		Stdout:     &out,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec: %v %+v", err, res)
	}
	want := "1 new /nonexistent\n/tmp\n65534\n65534\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestExecStartErrors(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	a := startAgent(t, Config{})
	cl := dialForward(t, a)
	for _, tc := range []struct {
		name string
		cfg  gantry.ExecConfig
		want error
		text string
	}{
		{"missing in PATH", gantry.ExecConfig{Cmd: []string{"no-such-command-xyz"}}, gantry.ErrNotFound, "not found in $PATH"},
		{"missing path", gantry.ExecConfig{Cmd: []string{"/no/such/file"}}, gantry.ErrNotFound, "no such file"},
		{"not executable", gantry.ExecConfig{Cmd: []string{noexec}}, gantry.ErrPermissionDenied, "permission denied"},
		{"bad workdir", gantry.ExecConfig{Cmd: []string{"true"}, WorkingDir: "/no/such/dir"}, gantry.ErrInvalidArgument, "no such directory"},
		{"unknown user", gantry.ExecConfig{Cmd: []string{"true"}, User: "no-such-user-xyz"}, gantry.ErrInvalidArgument, "no matching entry"},
		{"empty command", gantry.ExecConfig{}, gantry.ErrInvalidArgument, "exec needs a command"},
		{"empty program name", gantry.ExecConfig{Cmd: []string{""}}, gantry.ErrInvalidArgument, "exec needs a command"},
		{"relative workdir", gantry.ExecConfig{Cmd: []string{"true"}, WorkingDir: "tmp"}, gantry.ErrInvalidArgument, "WorkingDir"},
		{"bad env", gantry.ExecConfig{Cmd: []string{"true"}, Env: []string{"NOEQUALS"}}, gantry.ErrInvalidArgument, "Env"},
		{"resize without tty", gantry.ExecConfig{Cmd: []string{"true"}, Resize: make(chan gantry.TerminalSize)}, gantry.ErrInvalidArgument, "Resize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := cl.Exec(context.Background(), tc.cfg)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Exec = %+v, %v; want an error wrapping %v saying %q", res, err, tc.want, tc.text)
			}
		})
	}
	// The connection survives failed starts.
	res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"true"}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec(true) after failures = %+v, %v", res, err)
	}
}

func TestExecStdinStreaming(t *testing.T) {
	modes(t, Config{}, func(t *testing.T, a *Agent, cl *Client) {
		pr, pw := io.Pipe()
		out := &syncBuffer{}
		sess, err := cl.Start(context.Background(), gantry.ExecConfig{
			Cmd: []string{"sh", "-c", "while read l; do echo \"got $l\"; done; echo eof"}, Stdin: pr, Stdout: out,
		})
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for i := range 50 {
			line := fmt.Sprintf("line %d", i)
			fmt.Fprintln(pw, line)
			fmt.Fprintf(&want, "got %s\n", line)
			if i == 0 {
				// The first line makes the round trip before the rest is
				// sent: input really streams.
				waitFor(t, "the first echo", func() bool { return out.String() == "got line 0\n" })
			}
		}
		pw.Close()
		res, err := sess.Wait()
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Wait = %+v, %v", res, err)
		}
		if out.String() != want.String()+"eof\n" {
			t.Errorf("output %q", out.String())
		}
	})
}

func TestExecSignal(t *testing.T) {
	modes(t, Config{}, func(t *testing.T, a *Agent, cl *Client) {
		out := &syncBuffer{}
		sess, err := cl.Start(context.Background(), gantry.ExecConfig{
			Cmd: []string{"sh", "-c", "trap 'echo usr1' USR1; echo ready; while :; do sleep 0.01; done"}, Stdout: out,
		})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "ready", func() bool { return out.String() == "ready\n" })
		if err := sess.Signal("USR1"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the trap", func() bool { return out.String() == "ready\nusr1\n" })
		if err := sess.Signal("SIGKILL"); err != nil {
			t.Fatal(err)
		}
		res, err := sess.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(gantry.ExecResult{ExitCode: 137, Signal: "SIGKILL"}, res); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		if err := sess.Signal("TERM"); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("Signal after exit = %v, want ErrConflict", err)
		}
	})
}

// waitContains waits until s appears in b.
func waitContains(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%q in the output", s), func() bool { return strings.Contains(b.String(), s) })
}

func TestExecTTYResize(t *testing.T) {
	modes(t, Config{}, func(t *testing.T, a *Agent, cl *Client) {
		resize := make(chan gantry.TerminalSize, 1)
		resize <- gantry.TerminalSize{Rows: 24, Cols: 80}
		pr, pw := io.Pipe()
		out := &syncBuffer{}
		script := `stty size; while [ "$(stty size)" = "24 80" ]; do sleep 0.01; done; stty size
test -t 0 && test -t 1 && test -t 2 && echo tty; read x; echo "got $x"; exit 5`
		sess, err := cl.Start(context.Background(), gantry.ExecConfig{
			Cmd: []string{"sh", "-c", script}, Tty: true, Resize: resize, Stdin: pr, Stdout: out,
		})
		if err != nil {
			t.Fatal(err)
		}
		waitContains(t, out, "24 80")
		resize <- gantry.TerminalSize{Rows: 50, Cols: 132}
		waitContains(t, out, "50 132")
		io.WriteString(pw, "hi\n")
		res, err := sess.Wait()
		if err != nil || res.ExitCode != 5 {
			t.Fatalf("Wait = %+v, %v", res, err)
		}
		got := strings.ReplaceAll(out.String(), "\r\n", "\n")
		if !strings.HasPrefix(got, "24 80\n50 132\n") || !strings.Contains(got, "tty\n") || !strings.HasSuffix(got, "got hi\n") {
			t.Errorf("output %q, want both sizes, tty and the input", got)
		}
	})
}

func TestAttach(t *testing.T) {
	cfg := Config{Cmd: []string{"sh", "-c", "echo started; read x; echo \"got $x\"; echo bye >&2; exit 7"}, OpenStdin: true, StdinOnce: true}
	modes(t, cfg, func(t *testing.T, a *Agent, cl *Client) {
		var out, errb syncBuffer
		res, err := cl.Attach(context.Background(), gantry.AttachOptions{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errb})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 7 {
			t.Errorf("exit code %d, want 7", res.ExitCode)
		}
		// "started" may predate the attach; what follows the input cannot.
		if !strings.HasSuffix(out.String(), "got hello\n") || errb.String() != "bye\n" {
			t.Errorf("stdout %q stderr %q", out.String(), errb.String())
		}
		if _, err := cl.Attach(context.Background(), gantry.AttachOptions{}); !errors.Is(err, gantry.ErrConflict) {
			t.Errorf("attach after exit: %v, want ErrConflict", err)
		}
	})
}

func TestAttachTeesMainOutput(t *testing.T) {
	var logs syncBuffer
	a := startAgent(t, Config{Cmd: []string{"cat"}, OpenStdin: true, Stdout: &logs})
	cl := dialForward(t, a)
	var out1, out2 syncBuffer
	pr, pw := io.Pipe()
	done := make(chan error, 2)
	go func() {
		_, err := cl.Attach(context.Background(), gantry.AttachOptions{Stdin: pr, Stdout: &out1})
		done <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := cl.Attach(ctx, gantry.AttachOptions{Stdout: &out2})
		done <- err
	}()
	waitFor(t, "two attached sessions", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.cur.attachers) == 2
	})
	io.WriteString(pw, "one\n")
	waitContains(t, &out2, "one\n")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("detach: %v", err)
	}
	io.WriteString(pw, "two\n")
	waitContains(t, &out1, "two\n")
	// Detaching never stops the main command; closing attach input does
	// not either without StdinOnce.
	pw.Close()
	select {
	case <-a.Exited():
		t.Fatal("main command exited")
	default:
	}
	if out1.String() != "one\ntwo\n" || logs.String() != "one\ntwo\n" || out2.String() != "one\n" {
		t.Errorf("attached %q and %q, logs %q", out1.String(), out2.String(), logs.String())
	}
}

func TestAuthFailures(t *testing.T) {
	a := startAgent(t, Config{})
	srv := httptestServer(t, a)
	ctx := context.Background()

	_, err := Dial(ctx, wsURL(srv), []byte("wrong-secret-wrong-secret"), nil)
	if !errors.Is(err, gantry.ErrPermissionDenied) {
		t.Errorf("Dial with a wrong secret: %v, want ErrPermissionDenied", err)
	}

	// An impostor agent, which does not know the secret, is refused by the
	// controller too.
	impostor := startAgent(t, Config{Secret: []byte("not-the-real-secret-at-all")})
	_, err = Dial(ctx, wsURL(httptestServer(t, impostor)), testSecret, nil)
	if !errors.Is(err, gantry.ErrPermissionDenied) {
		t.Errorf("Dial of an impostor: %v, want ErrPermissionDenied", err)
	}

	// Reverse mode: a wrong secret or an unknown ID gets no client.
	core, logs := observer.New(zap.DebugLevel)
	hub := mustHub(t, testSecrets, &HubOptions{Logger: zap.New(core)})
	hsrv := httptestServer(t, hub)
	t.Cleanup(func() { hub.Close() })
	bad := startAgent(t, Config{Secret: []byte("wrong-secret-wrong-secret"), ID: "c1"})
	connect(t, bad, hsrv)
	unknown := startAgent(t, Config{ID: "c2"})
	connect(t, unknown, hsrv)
	waitFor(t, "both agents refused", func() bool {
		return logs.FilterMessage("agent refused").Len() >= 2
	})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := hub.Client(short, "c1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hub client for an agent with a wrong secret: %v", err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := hub.Client(short2, "c2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hub client for an unknown agent: %v", err)
	}

	// The right secret still works after all that.
	cl, err := Dial(ctx, wsURL(srv), testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
}

func httptestServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
