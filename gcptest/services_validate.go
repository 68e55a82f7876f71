package gcptest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Cloud Run services' limits (RULES.md, "Services").
const (
	maxServiceIDLen         = 49
	maxDescriptionLen       = 512
	defaultRequestTimeout   = 300 * time.Second
	maxRequestTimeout       = time.Hour
	defaultServicePort      = 8080
	maxRequestConcurrency   = 1000
	defaultConcurrency      = 80
	maxCustomAudiencesJSON  = 32768
	minServiceMemory        = 128 << 20
	maxLivenessProbeSeconds = 3600
	// The default TCP startup probe of a service's ingress container.
	defaultStartupProbeSeconds = 240
)

var serviceIDRe = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// validateServiceID applies CreateServiceRequest.service_id's rule:
// lowercase letters, digits and hyphens, beginning with a letter, not
// ending with a hyphen, fewer than 50 characters.
func validateServiceID(id string) error {
	if len(id) > maxServiceIDLen {
		return invalid("service_id %q is %d characters long; it must contain fewer than 50", id, len(id))
	}
	if !serviceIDRe.MatchString(id) {
		return invalid("service_id %q must use only lowercase letters, digits and hyphens, begin with a letter and not end with a hyphen", id)
	}
	return nil
}

// prepareService validates a service a user sent for name and returns
// the copy to store, with Cloud Run's defaults filled in and output
// fields cleared.
func prepareService(in *runpb.Service, name serviceName) (*runpb.Service, error) {
	if in == nil {
		return nil, invalid("service is required")
	}
	if err := validateServiceID(name.service); err != nil {
		return nil, err
	}
	switch {
	case in.GetBuildConfig() != nil:
		return nil, status.Error(codes.Unimplemented, "service.build_config is not supported by gcptest: deploy an image")
	case in.GetIapEnabled():
		return nil, status.Error(codes.Unimplemented, "service.iap_enabled is not supported by gcptest")
	case in.GetDefaultUriDisabled():
		return nil, status.Error(codes.Unimplemented, "service.default_uri_disabled is not supported by gcptest: the service's URL is the only way to reach it")
	case in.GetMultiRegionSettings() != nil:
		return nil, status.Error(codes.Unimplemented, "service.multi_region_settings is not supported by gcptest")
	}
	if n := utf8.RuneCountInString(in.GetDescription()); n > maxDescriptionLen {
		return nil, invalid("service.description is %d characters long; the limit is %d", n, maxDescriptionLen)
	}
	if err := validateLabels("service.labels", in.GetLabels()); err != nil {
		return nil, err
	}
	if err := validateAnnotations("service.annotations", in.GetAnnotations()); err != nil {
		return nil, err
	}
	svc := clone(in)
	svc.Name = name.String()
	svc.Uid, svc.Generation, svc.ObservedGeneration = "", 0, 0
	svc.CreateTime, svc.UpdateTime, svc.DeleteTime, svc.ExpireTime = nil, nil, nil, nil
	svc.Creator, svc.LastModifier = "", ""
	svc.TerminalCondition, svc.Conditions = nil, nil
	svc.LatestReadyRevision, svc.LatestCreatedRevision = "", ""
	svc.TrafficStatuses, svc.Uri, svc.Urls = nil, "", nil
	svc.SatisfiesPzs, svc.ThreatDetectionEnabled, svc.Reconciling = false, false, false
	svc.Etag = ""
	if _, ok := runpb.IngressTraffic_name[int32(svc.Ingress)]; !ok {
		return nil, invalid("service.ingress %d is not an IngressTraffic value", svc.Ingress)
	}
	if svc.Ingress == runpb.IngressTraffic_INGRESS_TRAFFIC_UNSPECIFIED {
		svc.Ingress = runpb.IngressTraffic_INGRESS_TRAFFIC_ALL
	}
	if svc.LaunchStage == api.LaunchStage_LAUNCH_STAGE_UNSPECIFIED {
		svc.LaunchStage = api.LaunchStage_GA
	}
	if err := validateTraffic(svc); err != nil {
		return nil, err
	}
	if err := validateServiceScaling(svc.GetScaling()); err != nil {
		return nil, err
	}
	if err := validateCustomAudiences(svc.GetCustomAudiences()); err != nil {
		return nil, err
	}
	if err := validateRevisionTemplate("service.template", svc.Template, name.service); err != nil {
		return nil, err
	}
	return svc, nil
}

// validateTraffic accepts the one split the emulator serves, all the
// traffic to the latest ready revision (an empty traffic means it), and
// returns it filled in.
func validateTraffic(svc *runpb.Service) error {
	latest := &runpb.TrafficTarget{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100}
	switch t := svc.GetTraffic(); {
	case len(t) == 0:
		svc.Traffic = []*runpb.TrafficTarget{latest}
		return nil
	case len(t) == 1 && t[0].GetType() == latest.Type && t[0].GetPercent() == 100 && t[0].GetRevision() == "":
		if t[0].GetTag() != "" {
			return status.Error(codes.Unimplemented, "service.traffic[0].tag is not supported by gcptest: revision tags have URLs of their own")
		}
		return nil
	}
	return status.Error(codes.Unimplemented, "service.traffic is not supported by gcptest beyond all traffic to the latest revision (TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent 100)")
}

func validateServiceScaling(sc *runpb.ServiceScaling) error {
	if sc == nil {
		return nil
	}
	if _, ok := runpb.ServiceScaling_ScalingMode_name[int32(sc.GetScalingMode())]; !ok {
		return invalid("service.scaling.scaling_mode %d is not a ScalingMode value", sc.GetScalingMode())
	}
	switch {
	case sc.GetMinInstanceCount() < 0, sc.GetMaxInstanceCount() < 0, sc.GetManualInstanceCount() < 0:
		return invalid("service.scaling: instance counts must not be negative")
	case sc.GetMaxInstanceCount() > 0 && sc.GetMinInstanceCount() > sc.GetMaxInstanceCount():
		return invalid("service.scaling.min_instance_count %d is above max_instance_count %d", sc.GetMinInstanceCount(), sc.GetMaxInstanceCount())
	}
	return nil
}

// validateCustomAudiences applies the custom audiences' limit: the list
// JSON-encoded at most 32,768 characters; an empty audience is refused.
func validateCustomAudiences(auds []string) error {
	for i, a := range auds {
		if a == "" {
			return invalid("service.custom_audiences[%d] is empty", i)
		}
	}
	if b, _ := json.Marshal(auds); len(b) > maxCustomAudiencesJSON {
		return invalid("service.custom_audiences: their JSON encoding is %d characters; the limit is %d", len(b), maxCustomAudiencesJSON)
	}
	return nil
}

// validateRevisionTemplate checks a service's revision template and
// fills in Cloud Run's defaults: a timeout of 300 s, the concurrency the
// CPU allows, the ingress container's port 8080 named http1, and its
// default TCP startup probe.
func validateRevisionTemplate(field string, t *runpb.RevisionTemplate, service string) error {
	if t == nil {
		return invalid("%s is required", field)
	}
	if r := t.GetRevision(); r != "" {
		if !strings.HasPrefix(r, service+"-") || len(r) > 63 || !serviceIDRe.MatchString(r) {
			return invalid("%s.revision %q must be prefixed by the name of the enclosing service and a hyphen (%q), and be at most 63 lowercase letters, digits and hyphens not ending with a hyphen", field, r, service+"-")
		}
	}
	if err := validateLabels(field+".labels", t.GetLabels()); err != nil {
		return err
	}
	if err := validateAnnotations(field+".annotations", t.GetAnnotations()); err != nil {
		return err
	}
	if sc := t.GetScaling(); sc != nil {
		switch {
		case sc.GetMinInstanceCount() < 0 || sc.GetMaxInstanceCount() < 0:
			return invalid("%s.scaling: instance counts must not be negative", field)
		case sc.GetMaxInstanceCount() > 0 && sc.GetMinInstanceCount() > sc.GetMaxInstanceCount():
			return invalid("%s.scaling.min_instance_count %d is above max_instance_count %d", field, sc.GetMinInstanceCount(), sc.GetMaxInstanceCount())
		}
	}
	if t.Timeout == nil {
		t.Timeout = durationProto(defaultRequestTimeout)
	} else if d := t.Timeout.AsDuration(); t.Timeout.CheckValid() != nil || d < time.Second || d > maxRequestTimeout {
		return invalid("%s.timeout %s must be between 1s and %s", field, d, maxRequestTimeout)
	}
	if _, ok := runpb.ExecutionEnvironment_name[int32(t.GetExecutionEnvironment())]; !ok {
		return invalid("%s.execution_environment %d is not an ExecutionEnvironment value", field, t.GetExecutionEnvironment())
	}
	gen2 := t.GetExecutionEnvironment() == runpb.ExecutionEnvironment_EXECUTION_ENVIRONMENT_GEN2
	cpu, err := validateServiceContainers(field+".containers", t.Containers, t.Volumes, gen2)
	if err != nil {
		return err
	}
	switch c := t.GetMaxInstanceRequestConcurrency(); {
	case c < 0 || c > maxRequestConcurrency:
		return invalid("%s.max_instance_request_concurrency %d must be between 1 and %d", field, c, maxRequestConcurrency)
	case c > 1 && cpu < 1000:
		return invalid("%s.max_instance_request_concurrency %d needs at least 1 CPU; the containers have %s", field, c, big.NewRat(cpu, 1000).FloatString(3))
	case c == 0 && cpu < 1000:
		t.MaxInstanceRequestConcurrency = 1
	case c == 0:
		t.MaxInstanceRequestConcurrency = defaultConcurrency
	}
	return nil
}

// ingressIndex is the index of the container that takes a service's
// requests: the one with ports, or the only one. The containers have
// been validated.
func ingressIndex(cs []*runpb.Container) int {
	for i, c := range cs {
		if len(c.GetPorts()) > 0 {
			return i
		}
	}
	return 0
}

// validateServiceContainers checks a revision's containers as
// validateContainers does a task's, with a service's rules for ports,
// probes and resources, and returns their CPU in thousandths.
func validateServiceContainers(field string, cs []*runpb.Container, volumes []*runpb.Volume, gen2 bool) (int64, error) {
	if len(cs) == 0 {
		return 0, invalid("%s: at least one container is required", field)
	}
	if len(cs) > maxContainers {
		return 0, invalid("%s: %d containers; the maximum is %d", field, len(cs), maxContainers)
	}
	withPorts := 0
	for _, c := range cs {
		if len(c.GetPorts()) > 0 {
			withPorts++
		}
	}
	if len(cs) > 1 && withPorts != 1 {
		return 0, invalid("%s: Revision template should contain exactly one container with an exposed port.", field)
	}
	ingress := ingressIndex(cs)
	byName, err := validateVolumes(strings.TrimSuffix(field, ".containers")+".volumes", volumes)
	if err != nil {
		return 0, err
	}
	names, err := validateContainerNames(field, cs, "revision")
	if err != nil {
		return 0, err
	}
	var cpu, mem int64
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := validateContainerCommand(f, c); err != nil {
			return 0, err
		}
		cc, cm, err := serviceContainerResources(f+".resources", c.GetResources(), len(cs) == 1, gen2)
		if err != nil {
			return 0, err
		}
		cpu, mem = cpu+cc, mem+cm
		if err := validatePorts(f, c, true); err != nil {
			return 0, err
		}
		if i == ingress && len(c.Ports) == 0 {
			c.Ports = []*runpb.ContainerPort{{Name: "http1", ContainerPort: defaultServicePort}}
		}
		if err := validateVolumeMounts(f+".volume_mounts", c.VolumeMounts, byName); err != nil {
			return 0, err
		}
		if c.ReadinessProbe != nil {
			return 0, status.Errorf(codes.Unimplemented, "%s.readiness_probe is not supported by gcptest", f)
		}
		if err := validateStartupProbe(f+".startup_probe", c); err != nil {
			return 0, err
		}
		if i == ingress && c.StartupProbe == nil {
			c.StartupProbe = defaultStartupProbe(c.Ports[0].GetContainerPort())
		}
		if err := validateLivenessProbe(f+".liveness_probe", c); err != nil {
			return 0, err
		}
		if err := validateDependsOn(f, c, names, "revision", cs[ingress]); err != nil {
			return 0, err
		}
		if err := validateWorkingDir(f, c); err != nil {
			return 0, err
		}
	}
	if len(cs) > 1 {
		if err := serviceInstanceResources(field, cpu, mem, gen2); err != nil {
			return 0, err
		}
	}
	if err := validateDependencyCycle(field, cs); err != nil {
		return 0, err
	}
	return cpu, nil
}

// defaultStartupProbe is the TCP startup probe Cloud Run gives a
// service's ingress container that has none.
func defaultStartupProbe(port int32) *runpb.Probe {
	return &runpb.Probe{
		TimeoutSeconds:   defaultStartupProbeSeconds,
		PeriodSeconds:    defaultStartupProbeSeconds,
		FailureThreshold: 1,
		ProbeType:        &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: port}},
	}
}

// isDefaultStartupProbe reports whether p is defaultStartupProbe's.
func isDefaultStartupProbe(p *runpb.Probe) bool {
	return p.GetTcpSocket() != nil && p.GetTimeoutSeconds() == defaultStartupProbeSeconds &&
		p.GetPeriodSeconds() == defaultStartupProbeSeconds && p.GetFailureThreshold() == 1 && p.GetInitialDelaySeconds() == 0
}

// validateLivenessProbe applies the services' liveness probe rules: an
// HTTP or gRPC probe; its port 1 to 65535 or the container's;
// initial_delay_seconds 0 to 3600; period_seconds 1 to 3600 (unset:
// 10); timeout_seconds 1 to 3600 (unset: 1) and at most period_seconds;
// failure_threshold at least 1 (unset: 3).
func validateLivenessProbe(field string, c *runpb.Container) error {
	p := c.GetLivenessProbe()
	if p == nil {
		return nil
	}
	if err := validateProbeAction(field, c, p, "liveness"); err != nil {
		return err
	}
	delay := p.GetInitialDelaySeconds()
	timeout := int32(orDefault(int(p.GetTimeoutSeconds()), defaultProbeTimeout))
	period := int32(orDefault(int(p.GetPeriodSeconds()), defaultProbePeriod))
	switch {
	case delay < 0 || delay > maxLivenessProbeSeconds:
		return invalid("%s.initial_delay_seconds %d must be between 0 and %d", field, delay, maxLivenessProbeSeconds)
	case timeout < 1 || timeout > maxLivenessProbeSeconds:
		return invalid("%s.timeout_seconds %d must be between 1 and %d", field, timeout, maxLivenessProbeSeconds)
	case period < 1 || period > maxLivenessProbeSeconds:
		return invalid("%s.period_seconds %d must be between 1 and %d", field, period, maxLivenessProbeSeconds)
	case timeout > period:
		return invalid("%s.timeout_seconds %d must not be greater than period_seconds %d", field, timeout, period)
	case p.GetFailureThreshold() < 0:
		return invalid("%s.failure_threshold %d must be at least 1", field, p.GetFailureThreshold())
	}
	return nil
}

// serviceContainerResources reads a service container's CPU (in
// thousandths) and memory limits as containerResources does a job's,
// with a service's least memory: 128 MiB, or 512 MiB in the second
// generation environment.
func serviceContainerResources(field string, r *runpb.ResourceRequirements, alone, gen2 bool) (cpu, mem int64, err error) {
	limits := r.GetLimits()
	for k := range limits {
		if k != "cpu" && k != "memory" && k != gpuLimitKey {
			return 0, 0, invalid("%s.limits: %q is not a supported resource: use cpu, memory or %s", field, k, gpuLimitKey)
		}
	}
	if v, ok := limits[gpuLimitKey]; ok && v != "1" {
		return 0, 0, invalid("%s.limits[%q] %q: the only supported value is 1", field, gpuLimitKey, v)
	}
	cpu = defaultCPUMilli
	if v, ok := limits["cpu"]; ok {
		q, ok := parseQuantity(v)
		milli := new(big.Rat)
		if ok {
			milli.Mul(q, big.NewRat(1000, 1))
		}
		if !ok || !milli.IsInt() || !milli.Num().IsInt64() {
			return 0, 0, invalid("%s.limits[\"cpu\"] %q is not a CPU amount such as 1, 2 or 500m in steps of 0.001", field, v)
		}
		cpu = milli.Num().Int64()
		if _, whole := wholeCPUMemory[cpu]; !whole && (cpu < minCPUMilli || cpu > defaultCPUMilli) {
			return 0, 0, invalid("%s.limits[\"cpu\"] %q: Cloud Run services take 0.08 to 1 vCPU, or 2, 4, 6 or 8", field, v)
		}
	}
	least := int64(minServiceMemory)
	if gen2 {
		least = minMemory
	}
	mem = defaultMemory
	if v, ok := limits["memory"]; ok {
		q, ok := parseQuantity(v)
		if !ok || !q.IsInt() || !q.Num().IsInt64() {
			return 0, 0, invalid("%s.limits[\"memory\"] %q is not an amount of memory such as 512Mi or 2Gi", field, v)
		}
		mem = q.Num().Int64()
		if alone && mem < least || mem <= 0 || mem > maxMemory {
			return 0, 0, invalid("%s.limits[\"memory\"] %q: Cloud Run services take %dMi to 32Gi", field, v, least>>20)
		}
	}
	if !alone {
		return cpu, mem, nil
	}
	return cpu, mem, cpuMemoryFits(field+".limits", cpu, mem)
}

// cpuMemoryFits applies Cloud Run's CPU and memory table: below 0.5
// vCPU at most 512 MiB, below 1 at most 1 GiB, and each whole number of
// vCPUs its range.
func cpuMemoryFits(field string, cpu, mem int64) error {
	lo, hi := int64(0), int64(halfCPUMaxMemory)
	switch rng, whole := wholeCPUMemory[cpu]; {
	case whole:
		lo, hi = rng[0], rng[1]
	case cpu < halfCPUMilli:
		hi = fractionalMaxMem
	}
	if mem > hi || mem < lo && lo > minMemory {
		return invalid("%s: %d bytes of memory with %s vCPU: that CPU takes at most %d bytes (at least %d)", field, mem, big.NewRat(cpu, 1000).FloatString(3), hi, lo)
	}
	return nil
}

// serviceInstanceResources applies the instance's limits to the totals
// of a revision's containers, as validateTaskResources does a task's.
func serviceInstanceResources(field string, cpu, mem int64, gen2 bool) error {
	least := int64(minServiceMemory)
	if gen2 {
		least = minMemory
	}
	switch {
	case mem < least || mem > maxMemory:
		return invalid("%s: the containers' memory limits total %d bytes; an instance takes %dMi to 32Gi", field, mem, least>>20)
	case cpu > 8000:
		return invalid("%s: the containers' CPU limits total %s vCPU; an instance takes at most 8", field, big.NewRat(cpu, 1000).FloatString(3))
	}
	for _, r := range minCPUForMemory {
		if mem > r.above && cpu < r.cpu {
			return invalid("%s: the containers' memory limits total %d bytes, which needs at least %d vCPU in all; they have %s", field, mem, r.cpu/1000, big.NewRat(cpu, 1000).FloatString(3))
		}
	}
	return nil
}
