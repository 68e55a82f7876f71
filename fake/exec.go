package fake

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/creack/pty"

	"github.com/gantryhq/gantry"
)

// Exec runs cfg.Cmd in the running container and returns its exit code.
// The command's environment is the container's followed by cfg.Env. A
// container that is not running, or is paused, is an ErrConflict. In
// host-process mode the command is a host process in the container's
// process group (with Tty, in a session of its own on a new terminal); in
// Go-function mode it is the image's Exec function. When the container
// exits first, the exec ends with 137.
func (rt *Runtime) Exec(ctx context.Context, id string, cfg gantry.ExecConfig) (_ gantry.ExecResult, err error) {
	defer gantry.WrapOp(&err, "fake", "exec", id)
	if err := ctx.Err(); err != nil {
		return gantry.ExecResult{}, err
	}
	if err := cfg.Validate(); err != nil {
		return gantry.ExecResult{}, err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return gantry.ExecResult{}, err
	}
	r := c.run
	switch {
	case r == nil:
		rt.mu.Unlock()
		return gantry.ExecResult{}, fmt.Errorf("%w: container %s is not running", gantry.ErrConflict, c.id)
	case r.paused:
		rt.mu.Unlock()
		return gantry.ExecResult{}, fmt.Errorf("%w: container %s is paused, unpause it first", gantry.ErrConflict, c.id)
	case r.h == nil && c.image.Exec == nil:
		rt.mu.Unlock()
		return gantry.ExecResult{}, fmt.Errorf("%w: image %s has no Exec function", gantry.ErrNotSupported, c.spec.Image)
	}
	env := append(rt.containerEnv(c), cfg.Env...)
	dir := cfg.WorkingDir
	if dir == "" {
		dir = c.spec.WorkingDir
	}
	usr := cfg.User
	if usr == "" {
		usr = c.spec.User
	}
	if r.h != nil {
		// An exec sees the container's mounts as its main process does.
		cfg.Cmd = r.h.mounts.args(cfg.Cmd)
		return rt.execHost(ctx, r, cfg, rt.processEnv(c, r.h.mounts, cfg.Env), r.h.mounts.path(dir), usr)
	}
	return rt.execImage(ctx, r, cfg, env, dir, usr)
}

// execImage runs the image's Exec function. Called with rt.mu held; it
// releases it.
func (rt *Runtime) execImage(ctx context.Context, r *run, cfg gantry.ExecConfig, env []string, dir, usr string) (gantry.ExecResult, error) {
	out := &gatedWriter{r: r, w: cfg.Stdout}
	errOut := &gatedWriter{r: r, w: cfg.Stderr}
	p := &Process{ContainerID: r.c.id, Args: append([]string(nil), cfg.Cmd...), Env: env, WorkingDir: dir, User: usr, Tty: cfg.Tty, Stdin: cfg.Stdin, Stdout: out, Stderr: errOut}
	if cfg.Tty {
		p.Stderr = out
	}
	if p.Stdin == nil {
		p.Stdin = eofReader{}
	}
	fn := r.c.image.Exec
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan int, 1)
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		result <- fn(ectx, p) & 0xff
	}()
	rt.mu.Unlock()
	defer out.close()
	defer errOut.close()
	select {
	case code := <-result:
		return gantry.ExecResult{ExitCode: code}, nil
	case <-r.done:
		return gantry.ExecResult{ExitCode: 128 + sigKILL, Signal: "SIGKILL"}, nil
	case <-ctx.Done():
		return gantry.ExecResult{}, ctx.Err()
	}
}

// gatedWriter passes a Go exec's output to the caller's writer until Exec
// returns, blocking while the container is paused.
type gatedWriter struct {
	r      *run
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	r := g.r
	r.gate.Lock()
	for r.gPaused && !r.ended {
		r.resumed.Wait()
	}
	r.gate.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.w == nil {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gatedWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// execHost runs the command as a host process. Called with rt.mu held; it
// releases it.
func (rt *Runtime) execHost(ctx context.Context, r *run, cfg gantry.ExecConfig, env []string, dir, usr string) (gantry.ExecResult, error) {
	h := r.h
	cmd := exec.Command(cfg.Cmd[0], cfg.Cmd[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cred, err := credential(usr)
	if err != nil {
		rt.mu.Unlock()
		return gantry.ExecResult{}, fmt.Errorf("%w: %v", gantry.ErrInvalidArgument, err)
	}
	var ptmx *os.File
	if cfg.Tty {
		var tty *os.File
		ptmx, tty, err = pty.Open()
		if err != nil {
			rt.mu.Unlock()
			return gantry.ExecResult{}, fmt.Errorf("%w: %v", gantry.ErrUnavailable, err)
		}
		defer ptmx.Close()
		// The first size sent is the terminal's size from the start, so
		// the command never sees the default 0x0.
		if cfg.Resize != nil {
			select {
			case sz := <-cfg.Resize:
				pty.Setsize(ptmx, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols})
			default:
			}
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Credential: cred}
		err = cmd.Start()
		tty.Close()
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
		cmd.WaitDelay = outputGrace
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: h.pid, Credential: cred}
		err = cmd.Start()
	}
	if err != nil {
		rt.mu.Unlock()
		// As Docker does, a command that cannot be executed completes the
		// exec with 127 (126 when not executable, as moby's current daemon
		// tells them apart; Docker 20.10 says 126 for both), and why is
		// written on the exec's stdout, where the daemon writes it.
		if code := cannotExec(err); code != 0 {
			if cfg.Stdout != nil {
				fmt.Fprintln(cfg.Stdout, err)
			}
			return gantry.ExecResult{ExitCode: code}, nil
		}
		return gantry.ExecResult{}, fmt.Errorf("%w: %v", gantry.ErrUnavailable, err)
	}
	pid := cmd.Process.Pid
	if cfg.Tty {
		h.mu.Lock()
		h.ttyExecs[pid] = true
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			delete(h.ttyExecs, pid)
			h.mu.Unlock()
		}()
	}
	// The exec must not outlive the Runtime: Close waits for it.
	rt.wg.Add(1)
	defer rt.wg.Done()
	rt.mu.Unlock()

	var copied sync.WaitGroup
	finished := make(chan struct{})
	if cfg.Tty {
		serveTerminal(ptmx, cfg, finished, &copied)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var ctxErr error
	select {
	case <-waited:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		cmd.Process.Kill()
		<-waited
	}
	close(finished)
	copied.Wait()
	if ctxErr != nil {
		return gantry.ExecResult{}, ctxErr
	}
	st := exitStatus(cmd.ProcessState)
	return gantry.ExecResult{ExitCode: st.ExitCode, Signal: st.Signal}, nil
}

// serveTerminal copies an exec's terminal to cfg.Stdout and cfg.Stdin to
// it, and applies cfg.Resize until finished is closed. copied is done once
// the output is drained and the resizing has stopped.
func serveTerminal(ptmx *os.File, cfg gantry.ExecConfig, finished <-chan struct{}, copied *sync.WaitGroup) {
	if cfg.Resize != nil {
		copied.Add(1)
		go func() {
			defer copied.Done()
			for {
				select {
				case sz, ok := <-cfg.Resize:
					if !ok {
						return
					}
					pty.Setsize(ptmx, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols})
				case <-finished:
					return
				}
			}
		}()
	}
	copied.Add(1)
	go func() {
		defer copied.Done()
		w := cfg.Stdout
		if w == nil {
			w = io.Discard
		}
		io.Copy(w, ptmx)
	}()
	if cfg.Stdin != nil {
		// This copy may block in the caller's Read for as long as the
		// caller likes; it ends at its next Write once ptmx is closed.
		go func() {
			if _, err := io.Copy(ptmx, cfg.Stdin); err == nil {
				ptmx.Write([]byte{4})
			}
		}()
	}
}
