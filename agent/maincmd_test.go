package agent

import (
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/creack/pty"
	"github.com/gantryhq/gantry"
)

// attachSession attaches to the main command as Client.Attach does, but
// returns the session, so that a test can signal it and resize it.
func attachSession(t *testing.T, cl *Client, req *openRequest, stdin io.Reader, stdout io.Writer, resize <-chan gantry.TerminalSize) *Session {
	t.Helper()
	req.Kind, req.Window, req.Stdin = "attach", defaultWindow, stdin != nil
	sess, err := cl.startSession(context.Background(), req, "attach", stdin, stdout, nil, resize)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	return sess
}

// eachMode runs f once per connection mode, on an agent of its own
// configured by mk.
func eachMode(t *testing.T, mk func() Config, f func(t *testing.T, a *Agent, cl *Client)) {
	for _, m := range []struct {
		name string
		dial func(testing.TB, *Agent) *Client
	}{{"forward", dialForward}, {"reverse", dialReverse}} {
		t.Run(m.name, func(t *testing.T) {
			cfg := mk()
			cfg.ID = "c1"
			a := startAgent(t, cfg)
			f(t, a, m.dial(t, a))
		})
	}
}

// TestAttachSignalReachesTheMainCommand: SIGNAL on an attached session
// goes to the main command, as docker kill with an init reaches the
// init's child; it used to be dropped.
func TestAttachSignalReachesTheMainCommand(t *testing.T) {
	for _, tc := range []struct {
		name, sig string
		want      gantry.ExecResult
	}{
		{"trapped", "USR1", gantry.ExecResult{ExitCode: 7}},
		{"killing", "SIGKILL", gantry.ExecResult{ExitCode: 137, Signal: "SIGKILL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func() Config {
				return Config{
					Cmd:    []string{"sh", "-c", `trap 'echo got; exit 7' USR1; echo ready; while :; do sleep 0.01; done`},
					Stdout: &syncBuffer{},
				}
			}, func(t *testing.T, a *Agent, cl *Client) {
				waitContains(t, a.cfg.Stdout.(*syncBuffer), "ready\n")
				out := &syncBuffer{}
				sess := attachSession(t, cl, &openRequest{}, nil, out, nil)
				if err := sess.Signal(tc.sig); err != nil {
					t.Fatal(err)
				}
				res, err := sess.Wait()
				if err != nil || res != tc.want {
					t.Fatalf("attach = %+v, %v; want %+v", res, err, tc.want)
				}
				if a.Wait() != tc.want {
					t.Errorf("the main command ended %+v, want %+v", a.Wait(), tc.want)
				}
				if tc.want.ExitCode == 7 && out.String() != "got\n" {
					t.Errorf("attached output %q, want the trap's", out.String())
				}
			})
		})
	}
}

// mainSize reads the size of the main command's terminal.
func mainSize(t *testing.T, a *Agent) (rows, cols uint16) {
	t.Helper()
	a.mu.Lock()
	tty := a.cur.tty
	a.mu.Unlock()
	rc, err := tty.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ws pty.Winsize
	var errno syscall.Errno
	rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	})
	if errno != 0 {
		t.Fatal(errno)
	}
	return ws.Rows, ws.Cols
}

// TestMainTTY: with Tty the main command runs in a terminal; an attached
// session gets its output as stdout, writes its input and resizes it.
func TestMainTTY(t *testing.T) {
	script := `read x; stty size; test -t 0 && test -t 1 && test -t 2 && echo "tty $TERM"; read y; echo "got $y"; exit 5`
	eachMode(t, func() Config {
		return Config{Cmd: []string{"sh", "-c", script}, Tty: true, OpenStdin: true, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}}
	}, func(t *testing.T, a *Agent, cl *Client) {
		pr, pw := io.Pipe()
		defer pw.Close()
		out := &syncBuffer{}
		resize := make(chan gantry.TerminalSize, 1)
		sess := attachSession(t, cl, &openRequest{}, pr, out, resize)
		resize <- gantry.TerminalSize{Rows: 30, Cols: 100}
		waitFor(t, "the resize", func() bool {
			rows, cols := mainSize(t, a)
			return rows == 30 && cols == 100
		})
		io.WriteString(pw, "go\n")
		waitContains(t, out, "tty xterm\r\n")
		io.WriteString(pw, "input\n")
		res, err := sess.Wait()
		if err != nil || res.ExitCode != 5 {
			t.Fatalf("attach = %+v, %v; want exit 5", res, err)
		}
		// The terminal echoes input.
		want := "go\r\n30 100\r\ntty xterm\r\ninput\r\ngot input\r\n"
		if out.String() != want {
			t.Errorf("attached output %q, want %q", out.String(), want)
		}
		if logs := a.cfg.Stdout.(*syncBuffer).String(); logs != want {
			t.Errorf("stdout %q, want %q", logs, want)
		}
		if e := a.cfg.Stderr.(*syncBuffer).String(); e != "" {
			t.Errorf("stderr %q, want nothing: a terminal has one output", e)
		}
	})
}

// TestMainTTYSizeFromAttach: an attach that names a size in its OPEN sets
// the main command's terminal to it.
func TestMainTTYSizeFromAttach(t *testing.T) {
	a := startAgent(t, Config{Cmd: []string{"cat"}, Tty: true, OpenStdin: true})
	cl := dialForward(t, a)
	sess := attachSession(t, cl, &openRequest{Rows: 12, Cols: 34}, nil, io.Discard, nil)
	defer sess.Close()
	waitFor(t, "the size from the attach", func() bool {
		rows, cols := mainSize(t, a)
		return rows == 12 && cols == 34
	})
}

// TestMainTTYStdinOnce: with StdinOnce the end of an attached session's
// input is the terminal's end of file, which ends cat.
func TestMainTTYStdinOnce(t *testing.T) {
	a := startAgent(t, Config{Cmd: []string{"cat"}, Tty: true, OpenStdin: true, StdinOnce: true})
	cl := dialForward(t, a)
	out := &syncBuffer{}
	res, err := attachSession(t, cl, &openRequest{}, strings.NewReader("hi\n"), out, nil).Wait()
	if err != nil || res.ExitCode != 0 || !strings.HasPrefix(out.String(), "hi\r\nhi\r\n") {
		t.Fatalf("attach = %+v, %v, output %q; want exit 0 with the echo and cat's copy", res, err, out.String())
	}
}

// TestMainTTYRecord: a terminal's output is all stdout, counted as such.
func TestMainTTYRecord(t *testing.T) {
	stdout, stderr, r := runRecorded(t, Config{Cmd: []string{"sh", "-c", "echo out; echo err >&2; printf end"}, Tty: true})
	if string(stdout) != "out\r\nerr\r\nend" || len(stderr) != 0 {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	if r != (Record{StdoutLines: 3}) {
		t.Errorf("record %+v, want 3 stdout lines", r)
	}
}
