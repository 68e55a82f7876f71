package docker_test

import (
	"context"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/docker"
	"github.com/gantryhq/gantry/runtimetest"
)

// TestConformance holds the conformance suite to a real Docker engine: the
// oracle every other backend's expectations come from. Its containers run
// on the host's network, which starts them faster than a bridge and lets
// the port tests reach them (the engine here has no default bridge);
// ports_test.go tests ports published from a bridge network.
func TestConformance(t *testing.T) {
	requireEngine(t)
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return docker.New(ctx, docker.WithNetwork("host"))
		},
		Image: testImage,
	})
}
