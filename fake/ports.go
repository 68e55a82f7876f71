package fake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/gantryhq/gantry"
)

// DialPort connects to TCP port port of the running container. A
// container has no network of its own here, so this dials 127.0.0.1:port
// on this host, where a host process (or a Go image's listener) serves
// it. A container that is not running (or waits for its restart policy)
// is an ErrConflict; a port nothing listens on refuses the connection at
// once, an ErrNotFound, as through gantry's agent.
func (rt *Runtime) DialPort(ctx context.Context, id string, port int) (_ net.Conn, err error) {
	defer gantry.WrapOp(&err, "fake", "dial port", id)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := gantry.ValidatePort(port); err != nil {
		return nil, err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return nil, err
	}
	running, full := c.run != nil, c.id
	rt.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("%w: container %s is not running", gantry.ErrConflict, full)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("port %d of container %s: %w", port, full, ctx.Err())
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w: nothing listens on port %d of container %s: %w", gantry.ErrNotFound, port, full, err)
		}
		return nil, fmt.Errorf("%w: port %d of container %s: %w", gantry.ErrUnavailable, port, full, err)
	}
	return conn, nil
}
