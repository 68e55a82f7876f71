package cloudrun

import (
	"context"
	"testing"
	"time"

	"github.com/gantryhq/gantry/gcptest"
)

// Test settings: a short poll interval and log grace keep the suite fast
// on the emulator, where logs are ingested at once.
const (
	testPoll  = 20 * time.Millisecond
	testGrace = 300 * time.Millisecond
	project   = "gantry-test"
	region    = "us-central1"
)

// unlimited is the Budget of tests that count calls themselves: the
// default budget spreads a burst of calls over a minute, as it must on
// Google Cloud.
var unlimited = Budget{Reads: -1, Writes: -1, Runs: -1, LogLists: -1}

// googleQuota is the Budget of a Runtime that has a project to itself:
// the strict emulator's quotas, which are Google's defaults.
var googleQuota = Budget{Reads: 1000, Writes: 180, Runs: 180, LogLists: 60}

// strictGrace covers the strict emulator's ingestion delay (at most 2 s).
const strictGrace = 2500 * time.Millisecond

// newServer starts an emulator that is closed when t ends. It is relaxed,
// as these tests count calls and time what Google leaves loose; opts may
// turn rules back on, and the conformance run is strict.
func newServer(t testing.TB, opts ...gcptest.Option) *gcptest.Server {
	t.Helper()
	srv, err := gcptest.NewServer(append([]gcptest.Option{gcptest.Relaxed()}, opts...)...)
	if err != nil {
		t.Fatalf("gcptest.NewServer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// newRuntime returns a Runtime on srv, closed when t ends.
func newRuntime(t testing.TB, srv *gcptest.Server, cfg Config) *Runtime {
	t.Helper()
	cfg.Project, cfg.Region = project, region
	if cfg.PollInterval == 0 {
		cfg.PollInterval = testPoll
	}
	if cfg.LogGrace == 0 {
		cfg.LogGrace = testGrace
	}
	if cfg.Budget == (Budget{}) {
		cfg.Budget = unlimited
	}
	rt, err := New(context.Background(), cfg, srv.ClientOptions()...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// loadServerOptions are the emulator's options for TestLoad.
func loadServerOptions() []gcptest.Option { return []gcptest.Option{gcptest.WithStrict()} }
