package gantry

import (
	"context"
	"time"
)

// Runtime runs containers with Docker's semantics. Every method is safe for
// concurrent use. Methods that take an id accept a container's full ID, a
// unique prefix of it, or its name, as Docker does; an ambiguous prefix is
// an ErrInvalidArgument.
//
// Operations beyond this set (restart, pause, rename, update, attach, top,
// stats) are optional interfaces such as Pauser; the package-level helpers
// such as Pause find them and return ErrNotSupported when a backend has
// none.
type Runtime interface {
	// Create makes a container from spec without starting it; its status
	// is StatusCreated. The spec is validated first (see Spec.Validate);
	// a name already in use is an ErrConflict.
	Create(ctx context.Context, spec Spec) (*Container, error)
	// Start runs a created or exited container. Starting a running
	// container succeeds and does nothing.
	Start(ctx context.Context, id string) error
	// Stop sends the stop signal, waits up to the timeout for the
	// container to exit, then kills it with SIGKILL. Stopping a container
	// that is not running succeeds and does nothing.
	Stop(ctx context.Context, id string, opts StopOptions) error
	// Kill sends a signal to the container's main process; "" means
	// SIGKILL. Killing a container that is not running is an ErrConflict.
	Kill(ctx context.Context, id string, signal string) error
	// Remove deletes the container. A running container is an ErrConflict
	// unless opts.Force is set, which kills it first.
	Remove(ctx context.Context, id string, opts RemoveOptions) error
	// Wait blocks until the container meets cond and returns its exit
	// status.
	Wait(ctx context.Context, id string, cond WaitCondition) (ExitStatus, error)
	// Logs returns the container's output across all its runs, in order.
	Logs(ctx context.Context, id string, opts LogsOptions) (LogReader, error)
	// Exec runs a command in a running container and returns when it
	// exits. A container that is not running is an ErrConflict.
	Exec(ctx context.Context, id string, cfg ExecConfig) (ExecResult, error)
	// Inspect returns the container's current description.
	Inspect(ctx context.Context, id string) (*Container, error)
	// List returns the containers that match opts, newest first.
	List(ctx context.Context, opts ListOptions) ([]*Container, error)
	// Capabilities reports what this backend supports.
	Capabilities() Capabilities
	// Close releases the Runtime's resources. Containers keep running
	// where the backend is a cloud; an in-memory backend stops them.
	Close() error
}

// DefaultStopTimeout is how long Stop waits after the stop signal before it
// kills, when neither StopOptions nor the Spec say otherwise (Docker's
// default).
const DefaultStopTimeout = 10 * time.Second

// StopOptions configures Stop.
type StopOptions struct {
	// Signal replaces the spec's stop signal (default SIGTERM).
	Signal string
	// Timeout is how long to wait after the signal before SIGKILL. Nil
	// means the spec's StopTimeout, else DefaultStopTimeout; zero kills at
	// once; a negative timeout waits forever. Write new(5*time.Second).
	Timeout *time.Duration
}

// RemoveOptions configures Remove.
type RemoveOptions struct {
	// Force kills a running container before removing it.
	Force bool
	// RemoveVolumes also deletes anonymous volumes the container created,
	// where the backend has any.
	RemoveVolumes bool
}

// WaitCondition is what Wait waits for, with Docker's names.
type WaitCondition string

const (
	// WaitNotRunning returns at once if the container is not running, else
	// when it stops. It is the default: the zero value means it.
	WaitNotRunning WaitCondition = "not-running"
	// WaitNextExit returns when the container next exits, even if it is
	// not running yet when Wait is called.
	WaitNextExit WaitCondition = "next-exit"
	// WaitRemoved returns when the container is removed.
	WaitRemoved WaitCondition = "removed"
)

// ExitStatus is how a container's run ended.
type ExitStatus struct {
	// ExitCode is the exact exit code: 128+N when signal N killed it.
	ExitCode int
	// Signal names the signal that killed the main process, or is empty.
	Signal string
	// Error is the platform's explanation when the run failed for a
	// reason of its own (a timeout, an image that would not pull).
	Error string
}
