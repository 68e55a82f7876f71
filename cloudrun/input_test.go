package cloudrun

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
)

// TestInvalidInputMakesNoCalls: every method checks what it is given
// (options, signals, conditions, the shape of the ID) before any API
// call, and says in one line what was asked and why it was refused.
func TestInvalidInputMakesNoCalls(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, sh("exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	year := 400 * 24 * time.Hour
	now := time.Now()
	for _, tc := range []struct {
		name string
		want error
		call func() error
	}{
		{"start with no ID", gantry.ErrInvalidArgument, func() error { return rt.Start(ctx, "") }},
		{"start a/b", gantry.ErrNotFound, func() error { return rt.Start(ctx, "a/b") }},
		{"inspect a name no container can have", gantry.ErrNotFound, func() error {
			_, err := rt.Inspect(ctx, "-"+strings.Repeat("x", 100))
			return err
		}},
		{"remove with no ID", gantry.ErrInvalidArgument, func() error { return rt.Remove(ctx, "", gantry.RemoveOptions{}) }},
		{"stop with an unknown signal", gantry.ErrInvalidArgument, func() error {
			return rt.Stop(ctx, c.ID, gantry.StopOptions{Signal: "SIGNOPE"})
		}},
		{"stop with SIGUSR1", gantry.ErrNotSupported, func() error {
			return rt.Stop(ctx, c.ID, gantry.StopOptions{Signal: "SIGUSR1"})
		}},
		{"stop with a timeout over a year", gantry.ErrInvalidArgument, func() error {
			return rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: &year})
		}},
		{"restart with SIGUSR1", gantry.ErrNotSupported, func() error {
			return rt.Restart(ctx, c.ID, gantry.StopOptions{Signal: "SIGUSR1"})
		}},
		{"kill with an unknown signal", gantry.ErrInvalidArgument, func() error { return rt.Kill(ctx, c.ID, "SIGNOPE") }},
		{"kill with signal 0", gantry.ErrInvalidArgument, func() error { return rt.Kill(ctx, c.ID, "0") }},
		{"kill with SIGHUP", gantry.ErrNotSupported, func() error { return rt.Kill(ctx, c.ID, "SIGHUP") }},
		{"wait for a bogus condition", gantry.ErrInvalidArgument, func() error {
			_, err := rt.Wait(ctx, c.ID, "bogus")
			return err
		}},
		{"logs with a negative tail", gantry.ErrInvalidArgument, func() error {
			_, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Tail: -2})
			return err
		}},
		{"logs until before since", gantry.ErrInvalidArgument, func() error {
			_, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Since: now, Until: now.Add(-time.Second)})
			return err
		}},
		{"list with a negative limit", gantry.ErrInvalidArgument, func() error {
			_, err := rt.List(ctx, gantry.ListOptions{Limit: -1})
			return err
		}},
		{"list by an unknown status", gantry.ErrInvalidArgument, func() error {
			_, err := rt.List(ctx, gantry.ListOptions{Status: []gantry.Status{"sleeping"}})
			return err
		}},
		{"create with a command that is not UTF-8", gantry.ErrInvalidArgument, func() error {
			_, err := rt.Create(ctx, sh("echo \xff"))
			return err
		}},
		{"create with a spec too large to store", gantry.ErrInvalidArgument, func() error {
			_, err := rt.Create(ctx, sh(strings.Repeat("echo x;", 40000)))
			return err
		}},
		{"sweep with no condition", gantry.ErrInvalidArgument, func() error {
			_, err := rt.Sweep(ctx, SweepOptions{})
			return err
		}},
		{"sweep a session that is no label value", gantry.ErrInvalidArgument, func() error {
			_, err := rt.Sweep(ctx, SweepOptions{Session: "Upper"})
			return err
		}},
		{"exec", gantry.ErrNotSupported, func() error {
			_, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCalls()
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if calls := srv.CallCounts(); len(calls) != 0 {
				t.Errorf("refused input made API calls: %v", calls)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "cloudrun: ") || strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q is not one line that names the backend and the request", msg)
			}
		})
	}
}
