package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/gantryhq/gantry"
)

// Signal sends a signal ("SIGTERM", "TERM", "15") to the main command, as
// docker kill does to a container run with an init: the agent delivers it
// to the main command only. It returns once the signal is sent, without
// waiting for its effect. A main command that has exited is an error
// wrapping gantry.ErrConflict.
//
// As docker kill, it stops the restart policy (Config.Restart) from
// starting the main command again, and calls off a pending restart; a
// main command not yet started (Config.Gate) is a conflict.
//
// It is a "signal" session. An agent older than those gets an attach
// session that reads nothing: opened, signalled and closed, which
// detaches without touching the main command.
func (c *Client) Signal(ctx context.Context, sig string) error {
	n, err := gantry.ParseSignal(sig)
	if err != nil {
		return fmt.Errorf("agent: signal: %w", err)
	}
	kill := &openRequest{Kind: "signal", Signal: n, Window: defaultWindow}
	sess, err := c.startSession(ctx, kill, "signal "+sig, nil, nil, nil, nil)
	if err == nil {
		_, err = sess.Wait()
		return err
	}
	if !errors.Is(err, gantry.ErrNotSupported) {
		return err
	}
	req := &openRequest{Kind: "attach", Window: defaultWindow}
	sess, err = c.startSession(ctx, req, "signal "+sig, nil, nil, nil, nil)
	if err != nil {
		return err
	}
	defer sess.Close()
	return sess.Signal(sig)
}
