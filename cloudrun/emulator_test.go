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

// newServer starts an emulator that is closed when t ends.
func newServer(t testing.TB, opts ...gcptest.Option) *gcptest.Server {
	t.Helper()
	srv, err := gcptest.NewServer(opts...)
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
