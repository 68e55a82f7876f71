package docker_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

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

// testNetwork is the user-defined bridge network the conformance suite's
// containers run on: the engine here runs with --bridge=none, so its
// default network publishes no ports, and a user-defined bridge does.
const testNetwork = "gantry-test"

// networkMade makes testNetwork once per test binary, unless it exists, and
// reports why it could not ("" when it is there).
var networkMade = sync.OnceValue(func() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := docker.New(ctx)
	if err != nil {
		return err.Error()
	}
	defer rt.Close()
	cli := rt.Client()
	if _, err := cli.NetworkInspect(ctx, testNetwork, client.NetworkInspectOptions{}); err == nil {
		return ""
	}
	_, err = cli.NetworkCreate(ctx, testNetwork, client.NetworkCreateOptions{Driver: "bridge"})
	if err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		return "create network " + testNetwork + ": " + err.Error()
	}
	return ""
})

// requireNetwork is requireEngine, and testNetwork made.
func requireNetwork(t testing.TB) {
	t.Helper()
	requireEngine(t)
	if why := networkMade(); why != "" {
		t.Fatalf("no network for the tests' containers: %s", why)
	}
}
