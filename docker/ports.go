package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/moby/moby/api/types/container"

	"github.com/gantryhq/gantry"
)

// loopback is the address Create publishes ports on: this machine only.
var loopback = netip.MustParseAddr("127.0.0.1")

// publishes reports whether containers on network mode publish ports:
// the default network and named ones do; host shares the host's ports,
// and none and container:<id> have none of their own.
func publishes(mode container.NetworkMode) bool {
	return !mode.IsHost() && !mode.IsNone() && !mode.IsContainer()
}

// DialPort connects to TCP port port of the running container: on the
// host's loopback for a container on the host's network, else at the
// address the daemon published the port on, which Create asked for every
// port of Spec.Ports. A container that is not running (or waits for its
// restart policy) is an ErrConflict; a port that was not published an
// ErrInvalidArgument, or an ErrUnavailable when the network published
// nothing. Docker's proxy accepts a connection before it reaches the
// container, so a published port nothing listens on gives a connection
// that the proxy closes, not an error; on the host's network, the refusal
// is an ErrNotFound.
func (r *Runtime) DialPort(ctx context.Context, id string, port int) (_ net.Conn, err error) {
	defer gantry.WrapOp(&err, backend, "dial port", id)
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := gantry.ValidatePort(port); err != nil {
		return nil, err
	}
	ctx, cancel := r.join(ctx)
	defer cancel()
	c, err := r.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.State.Running || c.State.Restarting {
		return nil, fmt.Errorf("%w: container %s is not running", gantry.ErrConflict, c.ID)
	}
	addr, err := publishedAddr(c, port)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, r.closedOr(fmt.Errorf("port %d of container %s at %s: %w", port, c.ID, addr, ctx.Err()))
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w: nothing listens on port %d of container %s at %s: %w", gantry.ErrNotFound, port, c.ID, addr, err)
		}
		return nil, fmt.Errorf("%w: port %d of container %s at %s: %w", gantry.ErrUnavailable, port, c.ID, addr, err)
	}
	return conn, nil
}

// publishedAddr is where TCP port port of the inspected container c
// answers on this machine.
func publishedAddr(c container.InspectResponse, port int) (string, error) {
	mode := c.HostConfig.NetworkMode
	switch {
	case mode.IsHost():
		return net.JoinHostPort(loopback.String(), strconv.Itoa(port)), nil
	case !publishes(mode):
		return "", fmt.Errorf("%w: container %s is on network %s, which gives it no ports to reach from this host", gantry.ErrNotSupported, c.ID, mode)
	}
	p, err := dockerPort(port, "tcp")
	if err != nil {
		return "", err
	}
	if _, asked := c.HostConfig.PortBindings[p]; !asked {
		return "", &gantry.FieldError{Field: "port", Value: strconv.Itoa(port), Reason: "is not published: the docker backend reaches only the TCP ports of the container's Spec.Ports"}
	}
	var bindings []string
	if c.NetworkSettings != nil {
		for _, b := range c.NetworkSettings.Ports[p] {
			host := b.HostIP
			if !host.IsValid() || host.IsUnspecified() {
				host = loopback
			}
			bindings = append(bindings, net.JoinHostPort(host.String(), b.HostPort))
		}
	}
	if len(bindings) == 0 {
		return "", fmt.Errorf("%w: the daemon published port %d of container %s nowhere: its network (%s) has no bridge, as the default one has none under dockerd --bridge=none; create the Runtime with WithNetwork and a user-defined network", gantry.ErrUnavailable, port, c.ID, mode.NetworkName())
	}
	// The IPv4 binding first, where there is one: it is the one asked for.
	for _, b := range bindings {
		if ip, _, _ := net.SplitHostPort(b); net.ParseIP(ip).To4() != nil {
			return b, nil
		}
	}
	return bindings[0], nil
}
