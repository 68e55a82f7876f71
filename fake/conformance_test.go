package fake_test

import (
	"context"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
	"github.com/gantryhq/gantry/runtimetest"
)

// TestConformance runs the conformance suite against the fake in
// host-process mode, where every workload is a real sh process.
func TestConformance(t *testing.T) {
	const secretName, secretValue = "runtimetest-secret", "s3cret value"
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(context.Context, *testing.T) (gantry.Runtime, error) {
			return fake.New(fake.WithHostProcesses(), fake.WithSecret(secretName, secretValue)), nil
		},
		Image:       "busybox",
		SecretName:  secretName,
		SecretValue: secretValue,
		Unobservable: map[gantry.Feature]string{
			gantry.FeatureMounts: "a host process's mounts are path substitution on whole arguments, and the suite's sh -c script names the mount inside its one argument",
		},
	})
}
