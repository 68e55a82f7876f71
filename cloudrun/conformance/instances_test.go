// Package conformance runs the conformance suite against cloudrun's
// instance kind on the strict emulator. It is a package of its own so
// that its test binary, which runs real processes for minutes, runs
// beside cloudrun's rather than after it.
package conformance

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"github.com/gantryhq/gantry/cloudrun"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/gantryhq/gantry/internal/naming"
	"github.com/gantryhq/gantry/internal/testregistry"
	"github.com/gantryhq/gantry/runtimetest"
)

// The emulator's settings for the run: its grace between SIGTERM and
// SIGKILL (Cloud Run's is 10 s; a short one keeps the run fast), the
// secret the suite reads, and a log grace that covers the strict
// emulator's ingestion delay (at most 2 s).
const (
	grace                   = 1500 * time.Millisecond
	secretName, secretValue = "runtimetest-secret", "s3cret value"
	logGrace                = 2500 * time.Millisecond
	pollInterval            = 20 * time.Millisecond
	relayToken              = "test-id-token"
)

// TestInstances runs the suite with every container a Cloud Run instance
// under the agent (delivered by the backend: the test image has none),
// in a region that has instances, over the real client libraries.
func TestInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs real processes for minutes; skipped with -short")
	}
	host := testregistry.Start(t)
	testregistry.PushImage(t, host, "library/busybox", testregistry.Image{Cmd: []string{"sh"}})
	relay, err := agent.NewRelay(&agent.RelayOptions{Authorize: func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer "+relayToken {
			return errors.New("no valid ID token")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	rs := httptest.NewServer(relay)
	t.Cleanup(rs.Close)
	srv, err := gcptest.NewServer(
		gcptest.WithStrict(),
		gcptest.WithImageRegistry(host),
		gcptest.WithStopGracePeriod(grace),
		gcptest.WithSecret(secretName, "1", secretValue),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	agentImage := testregistry.AgentImage(t, host)
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			return cloudrun.New(ctx, cloudrun.Config{
				Project:      "rtt-" + naming.RandomHex(5),
				Region:       "europe-west4",
				Kind:         cloudrun.KindInstance,
				PollInterval: pollInterval,
				LogGrace:     logGrace,
				// A project to itself: the strict emulator's quotas, which
				// are Google's defaults.
				Budget: cloudrun.Budget{Reads: 1000, Writes: 180, Runs: 180, LogLists: 60},
				Agent: &cloudrun.AgentConfig{
					Image: agentImage,
					Relay: rs.URL,
					IDToken: func(_ context.Context, audience string) (string, error) {
						if audience == rs.URL {
							return relayToken, nil
						}
						return srv.IDToken(audience), nil
					},
				},
			}, srv.ClientOptions()...)
		},
		Latency:     2 * logGrace,
		Image:       host + "/library/busybox",
		SecretName:  secretName,
		SecretValue: secretValue,
		Unobservable: map[gantry.Feature]string{
			gantry.FeatureMounts: "the emulator runs host processes, which see the host's file system",
		},
	})
}
