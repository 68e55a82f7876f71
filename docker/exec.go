package docker

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/gantryhq/gantry"
)

// Exec runs a command in a running container and returns its exit code
// once it has exited. A container that is not running (or is paused) is
// an ErrConflict, as in Docker; a command that cannot run completes with
// the daemon's exit code (126 or 127) and its message in the output, as
// docker exec does. When ctx ends first, Exec returns, and the command
// goes on: Docker cannot stop an exec.
func (r *Runtime) Exec(ctx context.Context, id string, cfg gantry.ExecConfig) (_ gantry.ExecResult, err error) {
	defer gantry.WrapOp(&err, backend, "exec", id)
	if err := r.state.Err(); err != nil {
		return gantry.ExecResult{}, err
	}
	if err := cfg.Validate(); err != nil {
		return gantry.ExecResult{}, err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return gantry.ExecResult{}, err
	}
	created, err := r.cli.ExecCreate(ctx, c.ID, client.ExecCreateOptions{
		User:         cfg.User,
		TTY:          cfg.Tty,
		AttachStdin:  cfg.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		Env:          cfg.Env,
		WorkingDir:   cfg.WorkingDir,
		Cmd:          cfg.Cmd,
	})
	if err != nil {
		return gantry.ExecResult{}, r.closedOr(classify(err, "create the exec"))
	}
	att, err := r.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: cfg.Tty})
	if err != nil {
		return gantry.ExecResult{}, r.closedOr(classify(err, "start the exec"))
	}
	resize := func(ctx context.Context, s gantry.TerminalSize) error {
		_, err := r.cli.ExecResize(ctx, created.ID, client.ExecResizeOptions{Height: uint(s.Rows), Width: uint(s.Cols)})
		return err
	}
	if err := r.stream(ctx, att.HijackedResponse, cfg.Tty, cfg.Stdin, cfg.Stdout, cfg.Stderr, cfg.Resize, resize); err != nil {
		return gantry.ExecResult{}, err
	}
	// The output ends as the command exits; the daemon records the exit
	// code a moment later.
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		res, err := r.cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
		if err != nil {
			return gantry.ExecResult{}, r.closedOr(classify(err, "read the exec's exit code"))
		}
		if !res.Running {
			return gantry.ExecResult{ExitCode: res.ExitCode, Signal: exitSignal(res.ExitCode)}, nil
		}
		select {
		case <-ctx.Done():
			return gantry.ExecResult{}, r.closedOr(fmt.Errorf("exec: %w", ctx.Err()))
		case <-time.After(pause):
		}
	}
}

// Attach connects to the main process's streams: output written from now
// on, and stdin when the container was created with OpenStdin. It returns
// when the container stops (its output ends) or ctx ends.
func (r *Runtime) Attach(ctx context.Context, id string, opts gantry.AttachOptions) (err error) {
	defer gantry.WrapOp(&err, backend, "attach", id)
	if err := r.state.Err(); err != nil {
		return err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return err
	}
	if opts.Stdin != nil && !c.Config.OpenStdin {
		return &gantry.FieldError{Field: "Stdin", Value: "set", Reason: "the container was created without OpenStdin"}
	}
	if opts.Resize != nil && !c.Config.Tty {
		return &gantry.FieldError{Field: "Resize", Value: "set", Reason: "the container has no terminal (Spec.Tty)"}
	}
	att, err := r.cli.ContainerAttach(ctx, c.ID, client.ContainerAttachOptions{
		Stream: true,
		Stdin:  opts.Stdin != nil,
		Stdout: true,
		Stderr: true,
	})
	if err != nil {
		return r.closedOr(classify(err, "attach"))
	}
	resize := func(ctx context.Context, s gantry.TerminalSize) error {
		_, err := r.cli.ContainerResize(ctx, c.ID, client.ContainerResizeOptions{Height: uint(s.Rows), Width: uint(s.Cols)})
		return err
	}
	return r.stream(ctx, att.HijackedResponse, c.Config.Tty, opts.Stdin, opts.Stdout, opts.Stderr, opts.Resize, resize)
}

// stream copies stdin to a hijacked connection (then closes its write
// side, which the daemon passes on as end of file) and the connection's
// output to stdout and stderr (demultiplexed, or raw to stdout with a
// terminal), applying each size from sizes with resize, until the output
// ends or ctx does. A nil writer discards its stream.
func (r *Runtime) stream(ctx context.Context, conn client.HijackedResponse, tty bool, stdin io.Reader, stdout, stderr io.Writer,
	sizes <-chan gantry.TerminalSize, resize func(context.Context, gantry.TerminalSize) error) error {
	defer conn.Close()
	// Closing the connection is the only way to end a read on it early.
	stop := context.AfterFunc(ctx, conn.Close)
	defer stop()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if stdin != nil {
		// This goroutine is not waited for: a Reader that never returns
		// would hold it, and the caller owns the Reader.
		go func() {
			io.Copy(conn.Conn, stdin)
			conn.CloseWrite()
		}()
	}
	if sizes != nil {
		go func() {
			for {
				select {
				case s, ok := <-sizes:
					if !ok {
						return
					}
					// A resize the daemon refuses (the process has just
					// exited) changes nothing worth reporting.
					resize(ctx, s)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var err error
	if tty {
		_, err = io.Copy(stdout, conn.Reader)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, conn.Reader)
	}
	if ctx.Err() != nil {
		return r.closedOr(fmt.Errorf("stream: %w", ctx.Err()))
	}
	if err != nil {
		return r.closedOr(classify(err, "stream"))
	}
	return nil
}
