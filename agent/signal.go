package agent

import (
	"context"
	"fmt"

	"github.com/gantryhq/gantry"
)

// Signal sends a signal ("SIGTERM", "TERM", "15") to the main command, as
// docker kill does to a container run with an init: the agent delivers it
// to the main command only. It returns once the signal is sent, without
// waiting for its effect. A main command that has exited is an error
// wrapping gantry.ErrConflict.
//
// It is an attach session that reads nothing: opened, signalled and
// closed, which detaches without touching the main command.
func (c *Client) Signal(ctx context.Context, sig string) error {
	if _, err := gantry.ParseSignal(sig); err != nil {
		return fmt.Errorf("agent: signal: %w", err)
	}
	req := &openRequest{Kind: "attach", Window: defaultWindow}
	sess, err := c.startSession(ctx, req, "signal "+sig, nil, nil, nil, nil)
	if err != nil {
		return err
	}
	defer sess.Close()
	return sess.Signal(sig)
}
