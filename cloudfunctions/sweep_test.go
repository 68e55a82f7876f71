package cloudfunctions

import (
	"errors"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/functions/apiv2/functionspb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/naming"
)

// TestSweep deletes what one session left, running or not, and nothing
// else: not another session's containers, and not a function gantry did
// not make; then, by age, every container of gantry's and still nothing
// else.
func TestSweep(t *testing.T) {
	srv := newServer(t)
	ctx := t.Context()
	crashed := newRuntime(t, srv, Config{Session: "crashed"})
	other := newRuntime(t, srv, Config{Session: "other"})
	var left []string
	for _, script := range []string{"exit 0", "echo ready; exec sleep 60"} {
		c, err := crashed.Create(ctx, spec(script))
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, c.ID)
	}
	if err := crashed.Start(ctx, left[1]); err != nil {
		t.Fatal(err)
	}
	kept, err := other.Create(ctx, spec("exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	// Functions gantry did not make, in the same project and region, each
	// a deployable runner: one named like gantry's, one with the crashed
	// session's label but not gantry's managed-by label, one managed by
	// another tool.
	foreign := map[string]map[string]string{
		"gantryfn-not-ours": nil,
		"session-lookalike": {meta.LabelSession: "crashed"},
		"other-tool":        {meta.LabelManagedBy: "terraform", meta.LabelSession: "crashed"},
	}
	for id, labels := range foreign {
		src, err := other.upload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rec := meta.Record{ID: naming.NewID(id), Name: id, Created: time.Now(), Spec: spec("exit 0")}
		pb, err := other.functionFor(rec, image, src)
		if err != nil {
			t.Fatal(err)
		}
		pb.Labels = labels
		op, err := other.fns.CreateFunction(ctx, &functionspb.CreateFunctionRequest{Parent: other.parent, FunctionId: id, Function: pb})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("create foreign function %s: %v", id, err)
		}
	}
	untouched := func(when string) {
		t.Helper()
		for id := range foreign {
			if _, err := other.fns.GetFunction(ctx, &functionspb.GetFunctionRequest{Name: other.functionName(id)}); err != nil {
				t.Errorf("%s: function %s, which gantry did not make, was touched: %v", when, id, err)
			}
		}
	}

	if _, err := other.Sweep(ctx, SweepOptions{}); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Sweep with no condition: %v, want ErrInvalidArgument", err)
	}
	if _, err := other.Sweep(ctx, SweepOptions{Session: "Not A Label"}); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Sweep of a session that is no label value: %v, want ErrInvalidArgument", err)
	}
	// The running command is killed before its function is deleted, so
	// a waiter learns how it ended.
	waiter, err := crashed.RegisterWait(ctx, left[1], gantry.WaitNotRunning)
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	removed, err := other.Sweep(ctx, SweepOptions{Session: "crashed"})
	if err != nil {
		t.Fatal(err)
	}
	if res := <-waiter; res.Err != nil || res.Status != (gantry.ExitStatus{ExitCode: 137, Signal: "SIGKILL"}) {
		t.Errorf("the swept running container's waiter got %+v, %v; want 137 SIGKILL", res.Status, res.Err)
	}
	if got := srv.Calls(mDelete); got != 2 {
		t.Errorf("%d DeleteFunction calls, want 2, the crashed session's", got)
	}
	slices.Sort(removed)
	slices.Sort(left)
	if !slices.Equal(removed, left) {
		t.Errorf("swept %v, want the crashed session's %v", removed, left)
	}
	for _, id := range left {
		if _, err := other.Inspect(ctx, id); !errors.Is(err, gantry.ErrNotFound) {
			t.Errorf("Inspect of swept %s: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := other.Inspect(ctx, kept.ID); err != nil {
		t.Errorf("another session's container was swept: %v", err)
	}
	untouched("after the session sweep")

	// Nothing is an hour old; everything of gantry's is older than a
	// nanosecond.
	if removed, err := other.Sweep(ctx, SweepOptions{OlderThan: time.Hour}); err != nil || len(removed) != 0 {
		t.Errorf("Sweep(OlderThan: 1h) = %v, %v; want nothing", removed, err)
	}
	removed, err = other.Sweep(ctx, SweepOptions{OlderThan: time.Nanosecond})
	if err != nil || !slices.Equal(removed, []string{kept.ID}) {
		t.Errorf("Sweep(OlderThan: 1ns) = %v, %v; want [%s]", removed, err, kept.ID)
	}
	untouched("after the age sweep")
	got := functionsOf(t, srv)
	if len(got) != len(foreign) {
		t.Errorf("functions after both sweeps: %v, want only the %d foreign ones", got, len(foreign))
	}
}
