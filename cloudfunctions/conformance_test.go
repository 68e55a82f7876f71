package cloudfunctions

import (
	"context"
	"github.com/gantryhq/gantry/internal/naming"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/gantryhq/gantry/runtimetest"
)

// The secret the conformance run reads, given to the emulator.
const conformanceSecret, conformanceSecretValue = "runtimetest-secret", "s3cret value"

// TestConformance runs the conformance suite against cloudfunctions on
// the strict emulator, over the real client libraries, with operations
// that really run and gantry's runner built and served as a function.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs real processes for minutes; skipped with -short")
	}
	srv := newServer(t, gcptest.WithStrict(), gcptest.WithSecret(conformanceSecret, "1", conformanceSecretValue))
	runtimetest.Run(t, runtimetest.Harness{
		// Each test has a project of its own, as Google's quotas are per
		// project, and a Runtime whose budget is that project's quota.
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return New(ctx, Config{Project: "rtt-" + naming.RandomHex(5), Region: region, PollInterval: testPoll, LogGrace: strictGrace, Budget: googleQuota, HTTPClient: plainHTTP}, srv.ClientOptions()...)
		},
		// Logs reach the strict emulator's Cloud Logging up to 2 s late,
		// and a follower holds each line for the grace.
		Latency:     2 * strictGrace,
		Image:       image,
		SecretName:  conformanceSecret,
		SecretValue: conformanceSecretValue,
	})
}
