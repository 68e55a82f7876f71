package gcptest

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Cloud Run instances' limits (RULES.md, "Cloud Run instances").
const maxInstanceIDLen = 49

// instanceRegionsRefused are the regions where Cloud Run instances
// cannot be created.
var instanceRegionsRefused = []string{"europe-west1", "us-central1", "us-east1"}

// checkInstanceRegion refuses the regions instances are not offered in.
func checkInstanceRegion(loc location) error {
	if slices.Contains(instanceRegionsRefused, loc.location) {
		return invalid("Cloud Run instances cannot be created in region %s: every supported region but %s has them", loc.location, strings.Join(instanceRegionsRefused, ", "))
	}
	return nil
}

// validateInstanceID applies CreateInstanceRequest.instance_id's rule:
// lowercase letters, digits and hyphens, beginning with a letter, not
// ending with a hyphen, fewer than 50 characters.
func validateInstanceID(id string) error {
	if len(id) > maxInstanceIDLen {
		return invalid("instance_id %q is %d characters long; it must contain fewer than 50", id, len(id))
	}
	if !serviceIDRe.MatchString(id) {
		return invalid("instance_id %q must use only lowercase letters, digits and hyphens, begin with a letter and not end with a hyphen", id)
	}
	return nil
}

// launchStageError is Cloud Run's answer to a preview feature used
// without the launch stage that allows it.
func launchStageError(name instanceName) error {
	return invalid("The feature 'Cloud Run Instances' is not supported in the declared launch stage on resource %s. The launch stage annotation should be specified at least as BETA. Please visit https://cloud.google.com/run/docs/troubleshooting#launch-stage-validation for in-depth troubleshooting documentation.", name.instance)
}

// prepareInstance validates an instance a user sent for name and
// returns the copy to store, with Cloud Run's defaults filled in and
// output fields cleared.
func prepareInstance(in *runpb.Instance, name instanceName) (*runpb.Instance, error) {
	if in == nil {
		return nil, invalid("instance is required")
	}
	if err := validateInstanceID(name.instance); err != nil {
		return nil, err
	}
	switch in.GetLaunchStage() {
	case api.LaunchStage_ALPHA, api.LaunchStage_BETA:
	default:
		return nil, launchStageError(name)
	}
	switch {
	case in.GetIapEnabled():
		return nil, status.Error(codes.Unimplemented, "instance.iap_enabled is not supported by gcptest")
	case in.GetDefaultUriDisabled():
		return nil, status.Error(codes.Unimplemented, "instance.default_uri_disabled is not supported by gcptest: the instance's URL is the only way to reach it")
	case in.GetSshEnabled():
		return nil, status.Error(codes.Unimplemented, "instance.ssh_enabled is not supported by gcptest")
	}
	if n := utf8.RuneCountInString(in.GetDescription()); n > maxDescriptionLen {
		return nil, invalid("instance.description is %d characters long; the limit is %d", n, maxDescriptionLen)
	}
	if err := validateLabels("instance.labels", in.GetLabels()); err != nil {
		return nil, err
	}
	if err := validateAnnotations("instance.annotations", in.GetAnnotations()); err != nil {
		return nil, err
	}
	pb := clone(in)
	pb.Name = name.String()
	pb.Uid, pb.Generation, pb.ObservedGeneration = "", 0, 0
	pb.CreateTime, pb.UpdateTime, pb.DeleteTime, pb.ExpireTime = nil, nil, nil, nil
	pb.Creator, pb.LastModifier = "", ""
	pb.TerminalCondition, pb.Conditions, pb.ContainerStatuses = nil, nil, nil
	pb.Urls, pb.LogUri = nil, ""
	pb.SatisfiesPzs, pb.Reconciling = false, false
	pb.Etag = ""
	// Instances are a BETA feature: ALPHA on input is BETA on output.
	pb.LaunchStage = api.LaunchStage_BETA
	if _, ok := runpb.IngressTraffic_name[int32(pb.Ingress)]; !ok {
		return nil, invalid("instance.ingress %d is not an IngressTraffic value", pb.Ingress)
	}
	if pb.Ingress == runpb.IngressTraffic_INGRESS_TRAFFIC_UNSPECIFIED {
		pb.Ingress = runpb.IngressTraffic_INGRESS_TRAFFIC_ALL
	}
	if _, ok := runpb.Instance_RestartPolicy_name[int32(pb.RestartPolicy)]; !ok {
		return nil, invalid("instance.restart_policy %d is not a RestartPolicy value (ALWAYS, ON_FAILURE or NEVER)", pb.RestartPolicy)
	}
	if pb.RestartPolicy == runpb.Instance_RESTART_POLICY_UNSPECIFIED {
		pb.RestartPolicy = runpb.Instance_ON_FAILURE
	}
	if err := validateInstanceContainers("instance.containers", pb.Containers, pb.Volumes); err != nil {
		return nil, err
	}
	gpu := usesGPU(pb.Containers)
	switch ns := pb.GetNodeSelector(); {
	case ns != nil && ns.GetAccelerator() == "":
		return nil, invalid("instance.node_selector.accelerator is required")
	case ns != nil && !gpu:
		return nil, invalid("instance.node_selector: an accelerator needs a container with a %s limit", gpuLimitKey)
	case ns == nil && gpu:
		return nil, invalid("instance.containers: a %s limit needs instance.node_selector.accelerator", gpuLimitKey)
	}
	return pb, nil
}

// validateInstanceContainers checks an instance's containers as
// validateServiceContainers does a revision's, with an instance's rules:
// at most one container exposes a port (the ingress container, else the
// first), no default port or startup probe, every container named in
// depends_on with a startup probe, and the second generation's
// resources.
func validateInstanceContainers(field string, cs []*runpb.Container, volumes []*runpb.Volume) error {
	if len(cs) == 0 {
		return invalid("%s: at least one container is required", field)
	}
	if len(cs) > maxContainers {
		return invalid("%s: %d containers; Instances may include at most %d containers", field, len(cs), maxContainers)
	}
	withPorts := 0
	for _, c := range cs {
		if len(c.GetPorts()) > 0 {
			withPorts++
		}
	}
	if withPorts > 1 {
		return invalid("%s: %d containers expose a port; at most one container of an instance may (the ingress container)", field, withPorts)
	}
	byName, err := validateVolumes(strings.TrimSuffix(field, ".containers")+".volumes", volumes)
	if err != nil {
		return err
	}
	names, err := validateContainerNames(field, cs, "instance")
	if err != nil {
		return err
	}
	var cpu, mem int64
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := validateContainerCommand(f, c); err != nil {
			return err
		}
		cc, cm, err := serviceContainerResources(f+".resources", c.GetResources(), len(cs) == 1, true)
		if err != nil {
			return err
		}
		cpu, mem = cpu+cc, mem+cm
		if err := validatePorts(f, c, true); err != nil {
			return err
		}
		if err := validateVolumeMounts(f+".volume_mounts", c.VolumeMounts, byName); err != nil {
			return err
		}
		if c.ReadinessProbe != nil {
			return status.Errorf(codes.Unimplemented, "%s.readiness_probe is not supported by gcptest", f)
		}
		if err := validateStartupProbe(f+".startup_probe", c); err != nil {
			return err
		}
		if err := validateLivenessProbe(f+".liveness_probe", c); err != nil {
			return err
		}
		if err := validateDependsOn(f, c, names, "instance", nil); err != nil {
			return err
		}
		if err := validateWorkingDir(f, c); err != nil {
			return err
		}
	}
	if len(cs) > 1 {
		if err := serviceInstanceResources(field, cpu, mem, true); err != nil {
			return err
		}
	}
	return validateDependencyCycle(field, cs)
}
