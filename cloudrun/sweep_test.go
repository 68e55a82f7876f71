package cloudrun

import (
	"errors"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
)

// TestSweep deletes what one session left, running or not, and nothing
// else: not another session's containers, and not a job gantry did not
// make.
func TestSweep(t *testing.T) {
	// Real operations: with instant ones RunJob would not return before
	// the execution ends.
	srv := newServer(t)
	ctx := testCtx(t)
	crashed := newRuntime(t, srv, Config{Session: "crashed"})
	other := newRuntime(t, srv, Config{Session: "other"})
	var left []string
	for _, script := range []string{"exit 0", forever} {
		c, err := crashed.Create(ctx, sh(script))
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, c.ID)
	}
	if err := crashed.Start(ctx, left[1]); err != nil {
		t.Fatal(err)
	}
	kept, err := other.Create(ctx, sh("exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	// Jobs gantry did not make, in the same project and region: one named
	// like gantry's, one with the crashed session's label but not
	// gantry's managed-by label, one managed by another tool.
	foreign := map[string]map[string]string{
		"gantry-not-ours":   nil,
		"session-lookalike": {"gantry-session": "crashed"},
		"other-tool":        {"managed-by": "terraform", "gantry-session": "crashed"},
	}
	for id, labels := range foreign {
		job := &runpb.Job{Labels: labels, Template: &runpb.ExecutionTemplate{Template: &runpb.TaskTemplate{Containers: []*runpb.Container{{Image: "busybox"}}}}}
		if _, err := other.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: other.parent, JobId: id, Job: job}); err != nil {
			t.Fatal(err)
		}
	}
	untouched := func(when string) {
		t.Helper()
		for id := range foreign {
			if _, err := other.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: other.jobName(id)}); err != nil {
				t.Errorf("%s: job %s, which gantry did not make, was touched: %v", when, id, err)
			}
		}
	}

	if _, err := other.Sweep(ctx, SweepOptions{}); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Sweep with no condition: %v, want ErrInvalidArgument", err)
	}
	srv.ResetCalls()
	removed, err := other.Sweep(ctx, SweepOptions{Session: "crashed"})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Calls(mExecsCancel); got != 1 {
		t.Errorf("%d CancelExecution calls, want 1 for the running container", got)
	}
	if got := srv.Calls(mJobsDelete); got != 2 {
		t.Errorf("%d DeleteJob calls, want 2, the crashed session's", got)
	}
	slices.Sort(removed)
	slices.Sort(left)
	if !slices.Equal(removed, left) {
		t.Errorf("swept %v, want the crashed session's %v", removed, left)
	}
	if _, err := other.Inspect(ctx, kept.ID); err != nil {
		t.Errorf("another session's container was touched: %v", err)
	}
	untouched("session sweep")
	removed, err = other.Sweep(ctx, SweepOptions{OlderThan: time.Nanosecond})
	if err != nil || len(removed) != 1 || removed[0] != kept.ID {
		t.Errorf("Sweep(older than 1ns) = %v, %v; want just %s", removed, err, kept.ID)
	}
	untouched("age sweep")
}
