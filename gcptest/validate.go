package gcptest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The limits and rules below are Cloud Run's; RULES.md lists each with the
// page of Google's documentation it comes from.
const (
	maxJobIDLen         = 63
	maxTaskCount        = 10000
	maxRetriesLimit     = 10
	defaultMaxRetries   = 3
	defaultTaskTimeout  = 10 * time.Minute
	maxTaskTimeout      = 168 * time.Hour
	maxContainers       = 10
	maxEnvPerContainer  = 1000
	maxLabels           = 64
	maxLabelLen         = 63
	maxAnnotationsBytes = 256 * 1024
	maxEnvNameLen       = 32768
	maxGPUTaskTimeout   = time.Hour
	maxArgs             = 1000
)

// systemPrefixes are the label and annotation namespaces Cloud Run API v2
// rejects (Job.labels, Job.annotations).
var systemPrefixes = []string{"run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev", "autoscaling.knative.dev"}

// reservedEnv are the variables of the container runtime contract, which
// cannot be set.
var reservedEnv = map[string]bool{
	"PORT": true, "K_SERVICE": true, "K_REVISION": true, "K_CONFIGURATION": true,
	"CLOUD_RUN_JOB": true, "CLOUD_RUN_EXECUTION": true, "CLOUD_RUN_TASK_INDEX": true,
	"CLOUD_RUN_TASK_ATTEMPT": true, "CLOUD_RUN_TASK_COUNT": true,
	"CLOUD_RUN_WORKER_POOL": true, "CLOUD_RUN_WORKER_POOL_REVISION": true,
}

var (
	jobIDRe          = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	labelKeyRe       = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]*$`)
	labelValueRe     = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]*$`)
	annotationNameRe = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	dnsSubdomainRe   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	rfc1123LabelRe   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envNameRe        = regexp.MustCompile(`^[^=]+$`)
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// validateJobID applies the job ID rule: lowercase letters, digits and
// hyphens, starting with a letter, not ending with a hyphen, at most 63
// characters.
func validateJobID(id string) error {
	if len(id) > maxJobIDLen {
		return invalid("job_id %q is %d characters long; the maximum is %d", id, len(id), maxJobIDLen)
	}
	if !jobIDRe.MatchString(id) {
		return invalid("job_id %q must use only lowercase letters, digits and hyphens, begin with a letter and not end with a hyphen", id)
	}
	return nil
}

func hasSystemPrefix(key string) (string, bool) {
	for _, p := range systemPrefixes {
		if key == p || strings.HasPrefix(key, p+"/") {
			return p, true
		}
	}
	return "", false
}

// validateLabels applies Google Cloud's label rules and Cloud Run's
// rejected namespaces.
func validateLabels(field string, labels map[string]string) error {
	if len(labels) > maxLabels {
		return invalid("%s: %d labels; the maximum is %d", field, len(labels), maxLabels)
	}
	for k, v := range labels {
		if p, ok := hasSystemPrefix(k); ok {
			return invalid("%s: label %q is in the %s namespace, which Cloud Run API v2 does not support", field, k, p)
		}
		if n := utf8.RuneCountInString(k); n < 1 || n > maxLabelLen || !labelKeyRe.MatchString(k) {
			return invalid("%s: label key %q must be 1 to 63 lowercase letters, digits, underscores or hyphens, starting with a lowercase letter", field, k)
		}
		if utf8.RuneCountInString(v) > maxLabelLen || !labelValueRe.MatchString(v) {
			return invalid("%s: value %q of label %q must be at most 63 lowercase letters, digits, underscores or hyphens", field, v, k)
		}
	}
	return nil
}

// validateAnnotations applies Kubernetes' annotation rules and Cloud
// Run's rejected namespaces.
func validateAnnotations(field string, annotations map[string]string) error {
	total := 0
	for k, v := range annotations {
		total += len(k) + len(v)
		if p, ok := hasSystemPrefix(k); ok {
			return invalid("%s: annotation %q is in the %s namespace, which Cloud Run API v2 rejects", field, k, p)
		}
		prefix, name, hasPrefix := strings.Cut(k, "/")
		if !hasPrefix {
			name, prefix = prefix, ""
		}
		if hasPrefix && (len(prefix) > 253 || !dnsSubdomainRe.MatchString(prefix)) {
			return invalid("%s: annotation key %q: the prefix must be a DNS subdomain of at most 253 characters", field, k)
		}
		if len(name) > 63 || !annotationNameRe.MatchString(name) {
			return invalid("%s: annotation key %q: the name must be 1 to 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit", field, k)
		}
	}
	if total > maxAnnotationsBytes {
		return invalid("%s: annotations total %d bytes; the maximum is %d", field, total, maxAnnotationsBytes)
	}
	return nil
}

// validateExecutionTemplate checks a job's template and fills in Cloud
// Run's defaults (task count 1, max retries 3, timeout 10 minutes), as
// the API returns them.
func validateExecutionTemplate(t *runpb.ExecutionTemplate) error {
	if t == nil {
		return invalid("job.template is required")
	}
	if err := validateLabels("job.template.labels", t.GetLabels()); err != nil {
		return err
	}
	if err := validateAnnotations("job.template.annotations", t.GetAnnotations()); err != nil {
		return err
	}
	if t.GetDelayExecution() {
		return status.Error(codes.Unimplemented, "job.template.delay_execution is not supported by gcptest")
	}
	if t.TaskCount < 0 || t.TaskCount > maxTaskCount {
		return invalid("job.template.task_count %d must be between 1 and %d", t.TaskCount, maxTaskCount)
	}
	if t.TaskCount == 0 {
		t.TaskCount = 1
	}
	if t.Parallelism < 0 {
		return invalid("job.template.parallelism %d is negative", t.Parallelism)
	}
	if t.Parallelism > t.TaskCount {
		return invalid("job.template.parallelism %d must be <= task_count %d", t.Parallelism, t.TaskCount)
	}
	return validateTaskTemplate("job.template.template", t.Template)
}

func validateTaskTemplate(field string, t *runpb.TaskTemplate) error {
	if t == nil {
		return invalid("%s is required", field)
	}
	if mr, ok := t.Retries.(*runpb.TaskTemplate_MaxRetries); ok {
		if mr.MaxRetries < 0 || mr.MaxRetries > maxRetriesLimit {
			return invalid("%s.max_retries %d must be between 0 and %d", field, mr.MaxRetries, maxRetriesLimit)
		}
	} else {
		t.Retries = &runpb.TaskTemplate_MaxRetries{MaxRetries: defaultMaxRetries}
	}
	if t.Timeout == nil {
		t.Timeout = durationProto(defaultTaskTimeout)
	} else if err := validateTimeout(field+".timeout", t.Timeout.AsDuration(), t.Timeout.CheckValid()); err != nil {
		return err
	}
	if t.ExecutionEnvironment == runpb.ExecutionEnvironment_EXECUTION_ENVIRONMENT_UNSPECIFIED {
		t.ExecutionEnvironment = runpb.ExecutionEnvironment_EXECUTION_ENVIRONMENT_GEN2
	}
	if err := validateContainers(field+".containers", t.Containers, t.Volumes); err != nil {
		return err
	}
	if usesGPU(t.Containers) && t.Timeout.AsDuration() > maxGPUTaskTimeout {
		return invalid("%s.timeout %s: a task with a GPU runs for at most %s", field, t.Timeout.AsDuration(), maxGPUTaskTimeout)
	}
	return nil
}

func validateTimeout(field string, d time.Duration, valid error) error {
	if valid != nil || d < time.Second || d > maxTaskTimeout {
		return invalid("%s %s must be between 1s and %s", field, d, maxTaskTimeout)
	}
	return nil
}

func validateContainers(field string, cs []*runpb.Container, volumes []*runpb.Volume) error {
	if len(cs) == 0 {
		return invalid("%s: at least one container is required", field)
	}
	if len(cs) > maxContainers {
		return invalid("%s: %d containers; the maximum is %d", field, len(cs), maxContainers)
	}
	byName, err := validateVolumes(strings.TrimSuffix(field, ".containers")+".volumes", volumes)
	if err != nil {
		return err
	}
	names, err := validateContainerNames(field, cs, "task")
	if err != nil {
		return err
	}
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := validateContainerCommand(f, c); err != nil {
			return err
		}
		if len(cs) == 1 {
			if err := validateResources(f+".resources", c.Resources); err != nil {
				return err
			}
		}
		if err := validatePorts(f, c, false); err != nil {
			return err
		}
		if err := validateVolumeMounts(f+".volume_mounts", c.VolumeMounts, byName); err != nil {
			return err
		}
		switch {
		case c.LivenessProbe != nil:
			return invalid("%s.liveness_probe: a job's containers take only a startup probe", f)
		case c.ReadinessProbe != nil:
			return invalid("%s.readiness_probe: a job's containers take only a startup probe", f)
		}
		if err := validateStartupProbe(f+".startup_probe", c); err != nil {
			return err
		}
		if err := validateDependsOn(f, c, names, "task", nil); err != nil {
			return err
		}
		if err := validateWorkingDir(f, c); err != nil {
			return err
		}
	}
	if len(cs) > 1 {
		if err := validateTaskResources(field, cs); err != nil {
			return err
		}
	}
	return validateDependencyCycle(field, cs)
}

// The checks of a container that a task's, a revision's and an
// instance's containers share; of names what has the containers (task,
// revision, instance) in the messages.

// validateContainerNames checks the containers' names: each a DNS label
// used once, required when there are several. It returns the
// containers by name.
func validateContainerNames(field string, cs []*runpb.Container, of string) (map[string]*runpb.Container, error) {
	names := map[string]*runpb.Container{}
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if c.Name == "" {
			if len(cs) > 1 {
				return nil, invalid("%s.name is required: the %s has %d containers", f, of, len(cs))
			}
			continue
		}
		if len(c.Name) > 63 || !rfc1123LabelRe.MatchString(c.Name) {
			return nil, invalid("%s.name %q must be a DNS label (RFC 1123): at most 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit", f, c.Name)
		}
		if names[c.Name] != nil {
			return nil, invalid("%s.name %q is used by another container", f, c.Name)
		}
		names[c.Name] = c
	}
	return names, nil
}

// validateContainerCommand checks what a container runs: its image,
// args and env.
func validateContainerCommand(f string, c *runpb.Container) error {
	if c.GetImage() == "" {
		return invalid("%s.image is required", f)
	}
	if len(c.Args) > maxArgs {
		return invalid("%s.args: %d arguments; the maximum is %d per container", f, len(c.Args), maxArgs)
	}
	return validateEnv(f+".env", c.Env)
}

// validatePorts checks a container's ports: at most one, from 1 to
// 65535; with named (a service's or an instance's), its name http1 (the
// default) or h2c.
func validatePorts(f string, c *runpb.Container, named bool) error {
	if len(c.Ports) > 1 {
		return invalid("%s.ports: only one port can be specified", f)
	}
	for _, p := range c.Ports {
		if p.GetContainerPort() < 1 || p.GetContainerPort() > maxPort {
			return invalid("%s.ports[0].container_port %d must be between 1 and %d", f, p.GetContainerPort(), maxPort)
		}
		if !named {
			continue
		}
		switch p.GetName() {
		case "":
			p.Name = "http1"
		case "http1", "h2c":
		default:
			return invalid("%s.ports[0].name %q must be http1 or h2c", f, p.GetName())
		}
	}
	return nil
}

// validateDependsOn checks a container's depends_on, each another
// container of names, once, with a startup probe (but for exempt, which
// gets a default one).
func validateDependsOn(f string, c *runpb.Container, names map[string]*runpb.Container, of string, exempt *runpb.Container) error {
	seen := map[string]bool{}
	for _, d := range c.DependsOn {
		dep := names[d]
		switch {
		case dep == nil || d == c.Name:
			return invalid("%s.depends_on: %q is not the name of another container of the %s", f, d, of)
		case seen[d]:
			return invalid("%s.depends_on: %q is named twice", f, d)
		case dep.StartupProbe == nil && dep != exempt:
			return invalid("%s.depends_on: Dependent container '%s' must have startup probe specified", f, d)
		}
		seen[d] = true
	}
	return nil
}

// validateWorkingDir checks a container's working_dir: an absolute path.
func validateWorkingDir(f string, c *runpb.Container) error {
	if c.WorkingDir != "" && !strings.HasPrefix(c.WorkingDir, "/") {
		return invalid("%s.working_dir %q must be an absolute path", f, c.WorkingDir)
	}
	return nil
}

// validateDependencyCycle refuses containers whose depends_on forms a
// cycle.
func validateDependencyCycle(field string, cs []*runpb.Container) error {
	if cycle := dependencyCycle(cs); cycle != nil {
		return invalid("%s: depends_on forms a cycle: %s", field, strings.Join(cycle, " -> "))
	}
	return nil
}

// dependencyCycle returns the names of a cycle of depends_on (the first
// name repeated at the end), or nil when there is none. The names are
// valid.
func dependencyCycle(cs []*runpb.Container) []string {
	deps := map[string][]string{}
	for _, c := range cs {
		deps[c.Name] = c.DependsOn
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch state[n] {
		case onPath:
			i := slices.Index(path, n)
			return append(slices.Clone(path[i:]), n)
		case done:
			return nil
		}
		state[n] = onPath
		path = append(path, n)
		for _, d := range deps[n] {
			if cycle := visit(d); cycle != nil {
				return cycle
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, c := range cs {
		if cycle := visit(c.Name); cycle != nil {
			return cycle
		}
	}
	return nil
}

func validateEnv(field string, env []*runpb.EnvVar) error {
	if len(env) > maxEnvPerContainer {
		return invalid("%s: %d variables; the maximum is %d per container", field, len(env), maxEnvPerContainer)
	}
	seen := map[string]bool{}
	for _, e := range env {
		name := e.GetName()
		if len(name) > maxEnvNameLen {
			return invalid("%s: a variable name is %d characters long; the maximum is %d", field, len(name), maxEnvNameLen)
		}
		if name == "" || !envNameRe.MatchString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
			return invalid("%s: %q is not a valid environment variable name", field, name)
		}
		if reservedEnv[name] {
			return invalid("%s: %s is reserved by the container runtime contract and cannot be set", field, name)
		}
		if seen[name] {
			return invalid("%s: %s is set twice", field, name)
		}
		seen[name] = true
	}
	return nil
}
