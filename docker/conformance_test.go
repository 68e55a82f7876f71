package docker_test

import (
	"context"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/docker"
	"github.com/gantryhq/gantry/runtimetest"
)

// TestConformance holds the conformance suite to a real Docker engine: the
// oracle every other backend's expectations come from.
func TestConformance(t *testing.T) {
	requireEngine(t)
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return docker.New(ctx, docker.WithNetwork("none"))
		},
		Image: testImage,
	})
}
