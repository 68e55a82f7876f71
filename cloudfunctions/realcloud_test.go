package cloudfunctions

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/runtimetest"
)

// TestRealCloudFunctions runs the conformance suite against real Cloud
// Functions, on the same code path the emulator exercises (the function's
// URL is called with an ID token, as New sets up when Config.HTTPClient
// is nil), when GANTRY_GCP_PROJECT names a project (with Application
// Default Credentials). GANTRY_GCP_REGION picks the region (default
// us-central1), GANTRY_GCP_RUNTIME the runtime the functions are built on
// (default go125), and GANTRY_GCP_SECRET with GANTRY_GCP_SECRET_VALUE a
// Secret Manager secret the functions can read. What the suite creates
// carries a session label; a crashed run is cleaned up by the next one's
// Sweep of anything of gantry's older than a day.
func TestRealCloudFunctions(t *testing.T) {
	project := os.Getenv("GANTRY_GCP_PROJECT")
	if project == "" {
		t.Skip("GANTRY_GCP_PROJECT is not set: no real Cloud Functions project to test against")
	}
	cfg := Config{
		Project: project,
		Region:  envOr("GANTRY_GCP_REGION", "us-central1"),
		// Deployments take minutes: a poll a second is plenty, and
		// Cloud Logging ingests within seconds.
		PollInterval: time.Second,
		LogGrace:     10 * time.Second,
	}
	sweeper, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sweeper.Close()
	if _, err := sweeper.Sweep(t.Context(), SweepOptions{OlderThan: 24 * time.Hour}); err != nil {
		t.Logf("sweeping leftovers: %v", err)
	}
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return New(ctx, cfg)
		},
		Image:       envOr("GANTRY_GCP_RUNTIME", image),
		Latency:     30 * time.Second,
		SecretName:  os.Getenv("GANTRY_GCP_SECRET"),
		SecretValue: os.Getenv("GANTRY_GCP_SECRET_VALUE"),
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
