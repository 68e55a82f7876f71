package gantry

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// The optional interfaces below are the operations a backend implements
// when it can. Find them with a type assertion, or call the package-level
// helper of the same name, which returns ErrNotSupported for a backend
// without them. Each has a row in Capabilities.

// Restarter restarts a container in one operation: stop (with opts), then
// start. The container keeps its ID and name.
type Restarter interface {
	Restart(ctx context.Context, id string, opts StopOptions) error
}

// Pauser suspends and resumes every process of a container.
type Pauser interface {
	Pause(ctx context.Context, id string) error
	Unpause(ctx context.Context, id string) error
}

// Renamer gives a container a new name, under Docker's name rules.
type Renamer interface {
	Rename(ctx context.Context, id, name string) error
}

// Updater changes a container's resources, as docker update does.
type Updater interface {
	Update(ctx context.Context, id string, res Resources) error
}

// Attacher connects to the main process's standard streams, as docker
// attach does.
type Attacher interface {
	Attach(ctx context.Context, id string, opts AttachOptions) error
}

// AttachOptions configures Attach. Attach copies the main process's output
// written from now on to Stdout and Stderr (Stdout only with a terminal)
// and Stdin to its input, and returns when the container stops or ctx
// ends. Stdin needs Spec.OpenStdin: without it, Attach with a Stdin is an
// ErrInvalidArgument.
type AttachOptions struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Resize delivers terminal size changes for a container with Tty.
	Resize <-chan TerminalSize
}

// ProcessLister lists the processes of a running container, as docker top.
type ProcessLister interface {
	Top(ctx context.Context, id string) (TopResult, error)
}

// TopResult is a process table: column titles and one row per process.
type TopResult struct {
	Titles    []string
	Processes [][]string
}

// StatsReader reports a container's resource usage, as docker stats
// --no-stream.
type StatsReader interface {
	Stats(ctx context.Context, id string) (Stats, error)
}

// Stats is a sample of a container's resource usage.
type Stats struct {
	Time time.Time
	// CPUTime is the CPU time used since the container started.
	CPUTime time.Duration
	// MemoryBytes is the resident memory in use.
	MemoryBytes int64
	// PIDs is the number of processes.
	PIDs int
}

// PortDialer connects to a TCP port inside a running container, as
// kubectl port-forward does: each call is one new connection to that
// port. A container that is not running is an ErrConflict. A port that
// nothing listens on refuses the connection: an error wrapping
// ErrNotFound, except where a proxy accepts before the container is
// reached (Docker's published ports), which gives a connection that
// closes without a byte; the backend's Capabilities note says which. The
// connection half-closes its writing side with CloseWrite, as a TCP
// connection does, where the backend's can.
type PortDialer interface {
	DialPort(ctx context.Context, id string, port int) (net.Conn, error)
}

func unsupported(rt Runtime, op string) error {
	return fmt.Errorf("%s: %w by %T", op, ErrNotSupported, rt)
}

// Restart stops and starts a container, using the backend's Restarter when
// it has one. Restarting a container that is not running starts it.
func Restart(ctx context.Context, rt Runtime, id string, opts StopOptions) error {
	if r, ok := rt.(Restarter); ok {
		return r.Restart(ctx, id, opts)
	}
	if !rt.Capabilities().Supported(FeatureRestart) {
		return unsupported(rt, "restart")
	}
	if err := rt.Stop(ctx, id, opts); err != nil {
		return err
	}
	return rt.Start(ctx, id)
}

// Pause suspends a running container.
func Pause(ctx context.Context, rt Runtime, id string) error {
	if p, ok := rt.(Pauser); ok {
		return p.Pause(ctx, id)
	}
	return unsupported(rt, "pause")
}

// Unpause resumes a paused container.
func Unpause(ctx context.Context, rt Runtime, id string) error {
	if p, ok := rt.(Pauser); ok {
		return p.Unpause(ctx, id)
	}
	return unsupported(rt, "unpause")
}

// Rename renames a container.
func Rename(ctx context.Context, rt Runtime, id, name string) error {
	if r, ok := rt.(Renamer); ok {
		return r.Rename(ctx, id, name)
	}
	return unsupported(rt, "rename")
}

// Update changes a container's resources.
func Update(ctx context.Context, rt Runtime, id string, res Resources) error {
	if u, ok := rt.(Updater); ok {
		return u.Update(ctx, id, res)
	}
	return unsupported(rt, "update")
}

// Attach attaches to a container's main process.
func Attach(ctx context.Context, rt Runtime, id string, opts AttachOptions) error {
	if a, ok := rt.(Attacher); ok {
		return a.Attach(ctx, id, opts)
	}
	return unsupported(rt, "attach")
}

// Top lists a container's processes.
func Top(ctx context.Context, rt Runtime, id string) (TopResult, error) {
	if p, ok := rt.(ProcessLister); ok {
		return p.Top(ctx, id)
	}
	return TopResult{}, unsupported(rt, "top")
}

// ContainerStats samples a container's resource usage.
func ContainerStats(ctx context.Context, rt Runtime, id string) (Stats, error) {
	if s, ok := rt.(StatsReader); ok {
		return s.Stats(ctx, id)
	}
	return Stats{}, unsupported(rt, "stats")
}

// DialPort opens a connection to TCP port port inside container id.
func DialPort(ctx context.Context, rt Runtime, id string, port int) (net.Conn, error) {
	if err := ValidatePort(port); err != nil {
		return nil, fmt.Errorf("dial port: %w", err)
	}
	if d, ok := rt.(PortDialer); ok {
		return d.DialPort(ctx, id, port)
	}
	return nil, unsupported(rt, "dial port")
}
