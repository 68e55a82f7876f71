package runtimetest

import (
	"errors"
	"net"
	"testing"

	"github.com/gantryhq/gantry"
)

// RunOption configures RunContainer.
type RunOption func(*runConfig)

type runConfig struct {
	waits []WaitStrategy
}

// WaitingFor makes RunContainer wait for s once the container has
// started. Given more than once, the strategies are waited for in turn,
// as by ForAll.
func WaitingFor(s WaitStrategy) RunOption {
	return func(c *runConfig) { c.waits = append(c.waits, s) }
}

// RunContainer creates a container from spec, starts it and waits until
// the strategies given with WaitingFor find it ready (without one, it
// does not wait). It returns the container as Inspect describes it then.
// As Create does, it arranges for the container to be force-removed when
// t ends or rt is closed, whichever comes first, logging its last lines
// first when t has failed. Any failing step fails t; a wait that fails
// does so with the strategy's *WaitError, which names the strategy, says
// what it saw last and quotes the container's last lines.
func RunContainer(t testing.TB, rt gantry.Runtime, spec gantry.Spec, opts ...RunOption) *gantry.Container {
	t.Helper()
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}
	c := Start(t, rt, spec)
	var w WaitStrategy
	switch len(cfg.waits) {
	case 0:
		return c
	case 1:
		w = cfg.waits[0]
	default:
		w = ForAll(cfg.waits...)
	}
	if err := w.WaitUntilReady(t.Context(), rt, c); err != nil {
		// A strategy of the test's own may return a bare error: it gets
		// the container's name and last lines too.
		var we *WaitError
		if !errors.As(err, &we) {
			err = newWaitError(t.Context(), rt, c, w.String(), "", err)
		}
		t.Fatal(err)
	}
	ready, err := rt.Inspect(t.Context(), c.ID)
	if err != nil {
		t.Fatalf("Inspect(%s) once ready: %v", c.ID, err)
	}
	return ready
}

// Endpoint returns a "host:port" address on this machine whose
// connections reach TCP port port of the running container id, on every
// backend that can dial ports (gantry.ForwardPort). The forward is closed
// when t ends, before the container is removed if RunContainer, Start or
// Create made it earlier in t. It fails t when the forward cannot be set
// up, quoting the backend's port-forward note if it has none.
func Endpoint(t testing.TB, rt gantry.Runtime, id string, port int) string {
	t.Helper()
	pf, err := gantry.ForwardPort(t.Context(), rt, id, port)
	if err != nil {
		if errors.Is(err, gantry.ErrNotSupported) {
			t.Fatalf("runtimetest: Endpoint(%s, %d): %v (%s: %s)", shortID(id), port, err, gantry.FeaturePortForward, rt.Capabilities()[gantry.FeaturePortForward].Note)
		}
		t.Fatalf("runtimetest: Endpoint(%s, %d): %v%s", shortID(id), port, err, lastLines(rt, id))
	}
	t.Cleanup(func() {
		// A connection the forward could not pass on reaches the client as
		// a bare end of file; say why, for a test that failed.
		if err := pf.Err(); err != nil && t.Failed() {
			t.Logf("runtimetest: the forward of %s's port %d could not reach it: %v", shortID(id), port, err)
		}
		if err := pf.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("runtimetest: closing the forward of %s's port %d: %v", shortID(id), port, err)
		}
	})
	return pf.Addr().String()
}

// HTTPEndpoint is Endpoint as a base URL, "http://host:port", to which a
// test appends a path.
func HTTPEndpoint(t testing.TB, rt gantry.Runtime, id string, port int) string {
	t.Helper()
	return "http://" + Endpoint(t, rt, id, port)
}

// SkipUnsupported skips t unless rt supports every one of features,
// quoting the backend's note for the first it lacks.
func SkipUnsupported(t testing.TB, rt gantry.Runtime, features ...gantry.Feature) {
	t.Helper()
	caps := rt.Capabilities()
	for _, f := range features {
		if !caps.Supported(f) {
			t.Skipf("backend does not support %q (capability none: %s)", f, caps[f].Note)
		}
	}
}
