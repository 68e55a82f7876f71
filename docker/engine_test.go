package docker_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/docker"
)

// testImage is the image every test runs: .ci/docker-engine.sh imports it
// from Debian's busybox-static, since nothing can be pulled.
const testImage = "busybox"

// engine reports, once per test binary, why no engine can run the tests
// ("" when one can).
var engine = sync.OnceValue(func() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := docker.New(ctx)
	if err != nil {
		return err.Error()
	}
	defer rt.Close()
	if _, err := rt.Client().ImageInspect(ctx, testImage); err != nil {
		return "image " + testImage + ": " + err.Error()
	}
	return ""
})

// requireEngine skips t when no Docker engine with the test image answers,
// saying why, unless CI=true: CI starts the engine (.ci/docker-engine.sh),
// so there a missing one is a failure, not a reason to skip.
func requireEngine(t testing.TB) {
	t.Helper()
	why := engine()
	if why == "" {
		return
	}
	const fix = "run .ci/docker-engine.sh as root to install and start one, with the busybox image"
	if os.Getenv("CI") == "true" {
		t.Fatalf("no usable Docker engine in CI: %s (%s)", why, fix)
	}
	t.Skipf("no usable Docker engine: %s (%s)", why, fix)
}

// newRuntime returns a Runtime on the local engine, with containers on no
// network (the engine here has no bridge), closed when t ends.
func newRuntime(t testing.TB) *docker.Runtime {
	t.Helper()
	requireEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := docker.New(ctx, docker.WithNetwork("none"))
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}
