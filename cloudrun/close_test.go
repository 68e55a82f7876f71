package cloudrun

import (
	"context"
	"testing"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/runtimetest"
)

// TestDeferredCloseLeavesNoJob writes a test as the README shows one, with
// `defer rt.Close()` and runtimetest's helpers, and counts the jobs left
// on the emulator when it has ended: the deferred Close runs before the
// helpers' t.Cleanup, which must not leave a job (on Cloud Run, a billed
// execution) behind.
func TestDeferredCloseLeavesNoJob(t *testing.T) {
	srv := newServer(t)
	t.Run("AsDocumented", func(t *testing.T) {
		rt, err := New(t.Context(), Config{Project: project, Region: region, PollInterval: testPoll, LogGrace: testGrace}, srv.ClientOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		c := runtimetest.Start(t, rt, gantry.Spec{Image: "busybox", Entrypoint: []string{"sh", "-c"}, Cmd: []string{"echo ready; sleep 600"}})
		runtimetest.RequireLog(t, rt, c.ID, "ready", time.Minute)
		runtimetest.Create(t, rt, gantry.Spec{Image: "busybox", Cmd: []string{"true"}})
	})
	jobs, err := run.NewJobsClient(context.Background(), srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	it := jobs.ListJobs(context.Background(), &runpb.ListJobsRequest{Parent: "projects/" + project + "/locations/" + region})
	var left []string
	for j, err := range it.All() {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, j.GetName())
	}
	if len(left) != 0 {
		t.Errorf("%d jobs left on the emulator: %q", len(left), left)
	}
}
