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
// the conformance run. Cloud Run's is 10 s; the suite holds a partial
// stop-timeout row only to what it promises, so any grace passes, and a
// short one keeps the run fast.
const conformanceGrace = 1500 * time.Millisecond

// The secret the conformance run reads, given to the emulator.
const conformanceSecret, conformanceSecretValue = "runtimetest-secret", "s3cret value"

// TestConformance runs the conformance suite against cloudrun on the
// emulator, over the real client libraries and gRPC, with operations that
// really run.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs real processes for minutes; skipped with -short")
	}
	srv := newServer(t,
		gcptest.WithStopGracePeriod(conformanceGrace),
		gcptest.WithSecret(conformanceSecret, "1", conformanceSecretValue),
	)
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return New(ctx, Config{Project: project, Region: region, PollInterval: testPoll, LogGrace: testGrace, Budget: unlimited}, srv.ClientOptions()...)
		},
		Image:       "busybox",
		SecretName:  conformanceSecret,
		SecretValue: conformanceSecretValue,
		Unobservable: map[gantry.Feature]string{
			gantry.FeatureMounts: "the emulator runs host processes, which see the host's file system",
		},
	})
}
