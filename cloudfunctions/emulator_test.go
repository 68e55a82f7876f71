package cloudfunctions

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gantryhq/gantry/gcptest"
)

// Test settings: a short poll interval and log grace keep the tests fast
// on the emulator, where logs are ingested at once unless strict.
const (
	testPoll  = 20 * time.Millisecond
	testGrace = 300 * time.Millisecond
	project   = "gantry-test"
	region    = "us-central1"
	// image names the runtime the tests build on.
	image = "go125"
)

// unlimited is the Budget of tests that count calls themselves.
var unlimited = Budget{Reads: -1, Writes: -1, LogLists: -1}

// googleQuota is the Budget of a Runtime that has a project to itself:
// the strict emulator's quotas for the classes Functions' calls spend.
var googleQuota = Budget{Reads: 1000, Writes: 60, LogLists: 60}

// strictGrace covers the strict emulator's ingestion delay (at most 2 s).
const strictGrace = 2500 * time.Millisecond

// newServer starts a relaxed emulator that is closed when t ends; opts
// may turn rules back on.
func newServer(t testing.TB, opts ...gcptest.Option) *gcptest.Server {
	t.Helper()
	srv, err := gcptest.NewServer(append([]gcptest.Option{gcptest.Relaxed(), gcptest.WithReconcileDelay(time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("gcptest.NewServer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// plainHTTP calls the emulator's function URLs, which take no ID token.
var plainHTTP = &http.Client{}

// newRuntime returns a Runtime on srv, closed when t ends.
func newRuntime(t testing.TB, srv *gcptest.Server, cfg Config) *Runtime {
	t.Helper()
	if cfg.Project == "" {
		cfg.Project = project
	}
	cfg.Region = region
	if cfg.PollInterval == 0 {
		cfg.PollInterval = testPoll
	}
	if cfg.LogGrace == 0 {
		cfg.LogGrace = testGrace
	}
	if cfg.Budget == (Budget{}) {
		cfg.Budget = unlimited
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = plainHTTP
	}
	rt, err := New(context.Background(), cfg, srv.ClientOptions()...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}
