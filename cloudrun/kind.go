package cloudrun

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/health"
)

// Kind is the Cloud Run resource a container runs as.
type Kind string

const (
	// KindJob runs the container as a Cloud Run job: one execution per
	// Start, run to completion, no inbound traffic. It is the default.
	KindJob Kind = "job"
	// KindInstance runs the container as a Cloud Run instance (a Preview
	// API): one long-running container with a URL of its own, stopped and
	// started in place, under the gantry agent, which gives it Docker's
	// restart policies, health checks and exit codes (Cloud Run reports
	// none for an instance). It needs Config.Agent and a region that has
	// instances.
	KindInstance Kind = "instance"
)

// KindLabel, among a Spec's labels, chooses the container's kind: "job"
// or "instance". Without it the kind is Config.Kind, and without that a
// spec that publishes ports, has a restart policy or a healthcheck is an
// instance, any other a job.
const KindLabel = "cloudrun.gantry.dev/kind"

// instanceRegionsRefused are the regions without Cloud Run instances
// (https://docs.cloud.google.com/run/docs/instances/create-and-manage-instances:
// "any of the supported regions, except for the following regions:
// europe-west1, us-central1, us-east1").
var instanceRegionsRefused = []string{"europe-west1", "us-central1", "us-east1"}

// instancesOffered reports whether the Runtime's region has instances.
func (r *Runtime) instancesOffered() bool {
	return !slices.Contains(instanceRegionsRefused, r.cfg.Region)
}

func hasHealthcheck(s *gantry.Spec) bool { return health.Runs(s.Healthcheck) }

func hasRestartPolicy(s *gantry.Spec) bool {
	return s.RestartPolicy.Name != "" && s.RestartPolicy.Name != gantry.RestartNo
}

// kindOf chooses the kind of a container of spec and checks that the
// Runtime can run it.
func (r *Runtime) kindOf(spec *gantry.Spec) (Kind, error) {
	k := Kind(spec.Labels[KindLabel])
	switch {
	case k == "" && r.cfg.Kind != "":
		k = r.cfg.Kind
	case k == "" && (len(spec.Ports) > 0 || hasRestartPolicy(spec) || hasHealthcheck(spec)):
		k = KindInstance
	case k == "":
		k = KindJob
	case k != KindJob && k != KindInstance:
		return "", invalid("Labels["+KindLabel+"]", string(k), "the kind is job or instance")
	}
	if k == KindInstance {
		if err := r.checkInstances(spec); err != nil {
			return "", err
		}
	}
	return k, nil
}

// checkInstances refuses an instance the Runtime cannot run.
func (r *Runtime) checkInstances(spec *gantry.Spec) error {
	why := ""
	switch {
	case !r.instancesOffered():
		why = fmt.Sprintf("Cloud Run has no instances in region %s (nor in %s)", r.cfg.Region, strings.Join(instanceRegionsRefused, ", "))
	case !r.wantsAgent(spec):
		why = "an instance runs under the gantry agent (Config.Agent, without " + NoAgentLabel + "): Cloud Run reports no exit code for an instance, and the agent gives it Docker's restart policies and health checks"
	}
	if why == "" {
		return nil
	}
	what := "a container with ports, a restart policy or a healthcheck"
	if Kind(spec.Labels[KindLabel]) == KindInstance || r.cfg.Kind == KindInstance {
		what = "a container of kind instance"
	}
	return fmt.Errorf("%w: %s is a Cloud Run instance, and %s", gantry.ErrNotSupported, what, why)
}

// KindOf returns the kind of a container a cloudrun Runtime described,
// read from its Resource; "" for another backend's.
func KindOf(c *gantry.Container) Kind {
	switch {
	case strings.Contains(c.Resource, "/jobs/"):
		return KindJob
	case strings.Contains(c.Resource, "/instances/"):
		return KindInstance
	}
	return ""
}
