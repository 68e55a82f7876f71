package gantry_test

import (
	"errors"
	"testing"

	"github.com/gantryhq/gantry"
)

func TestValidateRestartPolicy(t *testing.T) {
	for _, c := range []struct {
		policy gantry.RestartPolicy
		reason string // empty: valid
	}{
		{gantry.RestartPolicy{}, ""},
		{gantry.RestartPolicy{Name: "no"}, ""},
		{gantry.RestartPolicy{Name: "always"}, ""},
		{gantry.RestartPolicy{Name: "unless-stopped"}, ""},
		{gantry.RestartPolicy{Name: "on-failure"}, ""},
		{gantry.RestartPolicy{Name: "on-failure", MaxRetries: 2}, ""},
		{gantry.RestartPolicy{Name: "bogus"}, "must be no, on-failure, always or unless-stopped"},
		{gantry.RestartPolicy{Name: "Always"}, "must be no, on-failure, always or unless-stopped"},
		{gantry.RestartPolicy{Name: "on-failure", MaxRetries: -1}, "maximum retry count cannot be negative"},
		{gantry.RestartPolicy{Name: "always", MaxRetries: 3}, "maximum retry count cannot be used with restart policy 'always'"},
		{gantry.RestartPolicy{Name: "unless-stopped", MaxRetries: 1}, "maximum retry count cannot be used with restart policy 'unless-stopped'"},
		{gantry.RestartPolicy{MaxRetries: 1}, "maximum retry count cannot be used with restart policy 'no'"},
	} {
		spec := gantry.Spec{Image: "busybox", RestartPolicy: c.policy}
		err := spec.Validate()
		if c.reason == "" {
			if err != nil {
				t.Errorf("%+v: %v, want valid", c.policy, err)
			}
			continue
		}
		var fe *gantry.FieldError
		if !errors.As(err, &fe) || !errors.Is(err, gantry.ErrInvalidArgument) || fe.Reason != c.reason {
			t.Errorf("%+v: %v, want a FieldError saying %q", c.policy, err, c.reason)
		}
	}
}
