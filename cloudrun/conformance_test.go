package cloudrun

import (
	"context"
	"github.com/gantryhq/gantry/internal/naming"
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
		gcptest.WithStrict(),
		gcptest.WithStopGracePeriod(conformanceGrace),
		gcptest.WithSecret(conformanceSecret, "1", conformanceSecretValue),
	)
	runtimetest.Run(t, runtimetest.Harness{
		// Each test has a project of its own, as Google's quotas are per
		// project, and a Runtime whose budget is that project's whole
		// quota.
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return New(ctx, Config{Project: "rtt-" + naming.RandomHex(5), Region: region, PollInterval: testPoll, LogGrace: strictGrace, Budget: googleQuota}, srv.ClientOptions()...)
		},
		// Logs reach the strict emulator's Cloud Logging up to 2 s late,
		// and a follower holds each line for the grace.
		Latency:     2 * strictGrace,
		Image:       "busybox",
		SecretName:  conformanceSecret,
		SecretValue: conformanceSecretValue,
		Unobservable: map[gantry.Feature]string{
			gantry.FeatureMounts: "the emulator runs host processes, which see the host's file system",
		},
	})
}
