package cloudrun

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/runtimetest"
)

// TestRealCloudRun runs the conformance suite against real Cloud Run, on
// the same code path the emulator exercises, when GANTRY_GCP_PROJECT names
// a project (with Application Default Credentials). GANTRY_GCP_REGION
// picks the region (default us-central1), GANTRY_GCP_IMAGE the image
// (default docker.io/library/busybox), and GANTRY_GCP_SECRET with
// GANTRY_GCP_SECRET_VALUE a Secret Manager secret the jobs can read. What
// the suite creates carries a session label; a crashed run is cleaned up
// by the next one's Sweep of anything of gantry's older than a day.
func TestRealCloudRun(t *testing.T) {
	project := os.Getenv("GANTRY_GCP_PROJECT")
	if project == "" {
		t.Skip("GANTRY_GCP_PROJECT is not set: no real Cloud Run project to test against")
	}
	region := envOr("GANTRY_GCP_REGION", "us-central1")
	cfg := Config{Project: project, Region: region, PollInterval: time.Second, LogGrace: 10 * time.Second}
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
		Image:       envOr("GANTRY_GCP_IMAGE", "docker.io/library/busybox"),
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
