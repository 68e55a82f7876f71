package cloudrun

import (
	"context"
	"net"

	"github.com/gantryhq/gantry"
)

var _ gantry.PortDialer = (*Runtime)(nil)

// DialPort connects to TCP port port inside the running container,
// through its agent at the relay, as kubectl port-forward does: the agent
// dials 127.0.0.1:port in the container, so any TCP server there (a
// database in a job, say) is reachable, though a Cloud Run job takes no
// inbound traffic. gantry.ForwardPort makes a local listener of it. A
// port nothing listens on is an error wrapping gantry.ErrNotFound.
func (r *Runtime) DialPort(ctx context.Context, id string, port int) (_ net.Conn, err error) {
	defer gantry.WrapOp(&err, "cloudrun", "dial port", id)
	if err := r.state.Err(); err != nil {
		return nil, err
	}
	if err := gantry.ValidatePort(port); err != nil {
		return nil, err
	}
	if r.agent == nil {
		return nil, r.errNoAgent()
	}
	cl, err := r.runningAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	return cl.DialPort(ctx, port)
}
