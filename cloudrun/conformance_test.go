package cloudrun

import (
	"context"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/gantryhq/gantry/runtimetest"
)

// conformanceGrace is the emulator's grace between SIGTERM and SIGKILL in
// the conformance run. Cloud Run's is 10 s; the suite's zero-timeout stop
// tests expect a kill before a 2 s TERM trap ends, which Cloud Run cannot
// give (Capabilities says so), and a shorter grace keeps the run fast.
const conformanceGrace = 1500 * time.Millisecond

// TestConformance runs the conformance suite against cloudrun on the
// emulator, over the real client libraries and gRPC, with operations that
// really run.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs real processes for minutes; skipped with -short")
	}
	srv := newServer(t, gcptest.WithStopGracePeriod(conformanceGrace))
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return New(ctx, Config{Project: project, Region: region, PollInterval: testPoll, LogGrace: testGrace}, srv.ClientOptions()...)
		},
		Image: "busybox",
	})
}
