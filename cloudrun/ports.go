package cloudrun

import (
	"context"
	"fmt"
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

// IDToken returns a bearer token for a URL Cloud Run serves with IAM,
// such as an instance's Container.URL: AgentConfig.IDToken's, or else
// a Google ID token from Application Default Credentials for audience
// (the URL's scheme and host). Send it as "Authorization: Bearer".
func (r *Runtime) IDToken(ctx context.Context, audience string) (string, error) {
	if err := r.state.Err(); err != nil {
		return "", err
	}
	if r.agent == nil {
		return "", fmt.Errorf("cloudrun: id token: %w: needs Config.Agent (whose IDToken, or Application Default Credentials, mint it)", gantry.ErrNotSupported)
	}
	tok, err := r.agent.token(ctx, origin(audience))
	if err != nil {
		return "", fmt.Errorf("cloudrun: id token for %s: %w", audience, err)
	}
	return tok, nil
}
