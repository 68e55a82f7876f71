package cloudrun

import (
	"fmt"
	"maps"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/meta"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Cloud Run's limits for jobs that the mapping checks before any call, so
// that a spec Cloud Run would refuse fails at once and says why.
const (
	// MaxTimeout is the longest task timeout gantry sets: Cloud Run's
	// maximum, 168 hours
	// (https://cloud.google.com/run/docs/configuring/task-timeout). Zero
	// in a Spec means this.
	MaxTimeout = 168 * time.Hour
	// MaxGPUTimeout is the longest task timeout of a task with a GPU.
	MaxGPUTimeout = time.Hour
	// DefaultGPUType is the accelerator of a spec that asks for a GPU
	// without naming one.
	DefaultGPUType = "nvidia-l4"

	minMemory    = 512 << 20
	maxMemory    = 32 << 30
	gpuMinCPU    = 4
	gpuMinMemory = 16 << 30
	minCPU       = 0.08
	maxCPU       = 8
	mib          = 1 << 20
)

// refuse is the error for a Spec field Cloud Run jobs cannot honour.
func refuse(field, value, reason string) error {
	return fmt.Errorf("%s %q: %w by Cloud Run jobs: %s", field, value, gantry.ErrNotSupported, reason)
}

// invalid is the error for a value outside Cloud Run's limits.
func invalid(field, value, reason string) error {
	return &gantry.FieldError{Field: field, Value: value, Reason: reason}
}

// jobFor maps a validated spec to the Cloud Run job that runs it, or
// refuses what a job cannot do. With a plan the container runs under the
// agent (see AgentConfig), which gives it a terminal, input and any stop
// signal. It makes no call.
func (r *Runtime) jobFor(rec meta.Record, plan *agentPlan) (*runpb.Job, error) {
	return r.workloadFor(rec, plan, KindJob)
}

// workloadFor maps a validated spec to a job of its kind: a job to run, or
// the job whose task template instanceFor makes an instance of.
func (r *Runtime) workloadFor(rec meta.Record, plan *agentPlan, kind Kind) (*runpb.Job, error) {
	s := &rec.Spec
	withAgent := plan != nil
	isJob := kind == KindJob
	switch {
	case s.User != "":
		return nil, refuse("User", s.User, "a Cloud Run container runs as its image's user; there is no setting to change it")
	case len(s.Ports) > 0 && isJob:
		return nil, refuse("Ports", strconv.Itoa(s.Ports[0].Port), "a job takes no inbound traffic; a container with ports is a Cloud Run instance (KindInstance, with Config.Agent, in a region that has instances)")
	case hasHealthcheck(s) && isJob:
		return nil, refuse("Healthcheck", fmt.Sprint(s.Healthcheck.Test), "jobs have no health checks; a container with one is a Cloud Run instance (KindInstance, with Config.Agent, in a region that has instances)")
	case s.Tty && !withAgent:
		return nil, refuse("Tty", "true", "a job has no terminal without the gantry agent")
	case s.OpenStdin && !withAgent:
		return nil, refuse("OpenStdin", "true", "a job has no standard input without the gantry agent")
	case len(s.Sidecars) > 0:
		return nil, refuse("Sidecars", s.Sidecars[0].Name, "the cloudrun backend runs one container per job")
	case hasRestartPolicy(s) && isJob:
		return nil, refuse("RestartPolicy.Name", s.RestartPolicy.Name, noteRestartPolicy)
	}
	if withAgent {
		for i, kv := range s.Env {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, agentEnvPrefix) {
				return nil, invalid(fmt.Sprintf("Env[%d]", i), k, "the "+agentEnvPrefix+"* variables configure the gantry agent; create the container with "+NoAgentLabel+" to set them")
			}
		}
		for i, sec := range s.Secrets {
			if strings.HasPrefix(sec.Env, agentEnvPrefix) {
				return nil, invalid(fmt.Sprintf("Secrets[%d].Env", i), sec.Env, "the "+agentEnvPrefix+"* variables configure the gantry agent")
			}
		}
	}
	if s.StopSignal != "" && !withAgent {
		if n, _ := gantry.ParseSignal(s.StopSignal); n != 15 {
			return nil, refuse("StopSignal", s.StopSignal, "without the gantry agent, cancelling an execution always sends SIGTERM")
		}
	}

	c := &runpb.Container{
		Image:      s.Image,
		Command:    s.Entrypoint,
		Args:       s.Cmd,
		WorkingDir: s.WorkingDir,
	}
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		c.Env = append(c.Env, &runpb.EnvVar{Name: k, Values: &runpb.EnvVar_Value{Value: v}})
	}
	task := &runpb.TaskTemplate{
		Containers:     []*runpb.Container{c},
		Retries:        &runpb.TaskTemplate_MaxRetries{MaxRetries: 0},
		ServiceAccount: r.cfg.ServiceAccount,
	}
	timeout, err := resources(s, c, task)
	if err != nil {
		return nil, err
	}
	if withAgent && c.GetResources().GetLimits()["cpu"] == cpuQuantity(maxCPU) {
		return nil, invalid("Resources", "8 CPU", "with the gantry agent the container has at most 6 CPUs: its sidecar takes 0.1 of the task's 8")
	}
	task.Timeout = durationpb.New(timeout)
	if err := volumes(s, c, task); err != nil {
		return nil, err
	}
	if withAgent {
		if err := r.wrap(task, c, s, rec.ID, plan); err != nil {
			return nil, err
		}
	}

	labels := rec.Labels(meta.System{Session: r.cfg.Session, Labels: r.cfg.Labels})
	annotations, err := rec.Annotations()
	if err != nil {
		return nil, err
	}
	// The execution template carries the job's labels too: executions and
	// their tasks take the template's, and they are what billing reports
	// and Cloud Logging see.
	job := &runpb.Job{
		Labels:      labels,
		Annotations: annotations,
		Client:      "gantry",
		Template: &runpb.ExecutionTemplate{
			Labels:      maps.Clone(labels),
			TaskCount:   1,
			Parallelism: 1,
			Template:    task,
		},
	}
	if s.Resources.GPUs > 0 {
		// GPUs for jobs are a Preview feature, which a request must opt
		// into with its launch stage
		// (https://cloud.google.com/run/docs/configuring/jobs/gpu).
		job.LaunchStage = api.LaunchStage_BETA
	}
	return job, nil
}

// cpuQuantity writes a CPU count as Cloud Run's examples do: whole CPUs as
// an integer ("2"), a fraction in millicores ("500m").
func cpuQuantity(cpu float64) string {
	if cpu == math.Trunc(cpu) {
		return strconv.FormatInt(int64(cpu), 10)
	}
	return strconv.FormatInt(int64(math.Round(cpu*1000)), 10) + "m"
}

// resources maps CPU, memory, GPU and the timeout, and returns the task
// timeout to set.
// memoryRange gives the memory Cloud Run allows with a number of CPUs
// (https://cloud.google.com/run/docs/configuring/jobs/memory-limits and
// .../jobs/cpu): up to 512 MiB below half a CPU, 1 GiB below one CPU,
// 4 GiB with one, 8 GiB with two, 2 to 16 GiB with four, 4 to 24 GiB with
// six and 4 to 32 GiB with eight.
func memoryRange(cpu float64) (lo, hi int64) {
	switch {
	case cpu < 0.5:
		return minMemory, minMemory
	case cpu < 1:
		return minMemory, 1 << 30
	case cpu == 1:
		return minMemory, 4 << 30
	case cpu == 2:
		return minMemory, 8 << 30
	case cpu == 4:
		return 2 << 30, 16 << 30
	case cpu == 6:
		return 4 << 30, 24 << 30
	}
	return 4 << 30, maxMemory
}

// pairCPUAndMemory makes CPU and memory a pair Cloud Run accepts. When the
// spec leaves one of them unset, it takes the least that goes with the
// other (Cloud Run's own defaults, 1 CPU and 512 MiB, would be refused
// with 8 GiB or with 4 CPUs); when both are set and do not go together,
// the spec is refused.
func pairCPUAndMemory(res *gantry.Resources) error {
	cpu, mem := res.CPU, res.MemoryBytes
	if cpu == 0 {
		cpu = 1
		for _, c := range []float64{1, 2, 4, 6, 8} {
			if _, hi := memoryRange(c); mem <= hi {
				cpu = c
				break
			}
		}
		if cpu != 1 {
			res.CPU = cpu
		}
	}
	lo, hi := memoryRange(cpu)
	switch {
	case mem == 0 && lo > minMemory:
		res.MemoryBytes = lo
	case mem != 0 && (mem < lo || mem > hi):
		return invalid("Resources", fmt.Sprintf("%g CPU, %d bytes", cpu, mem), fmt.Sprintf("with %g CPU Cloud Run takes %d MiB to %d MiB of memory", cpu, lo/mib, hi/mib))
	}
	return nil
}

func resources(s *gantry.Spec, c *runpb.Container, task *runpb.TaskTemplate) (time.Duration, error) {
	res := s.Resources
	limits := map[string]string{}
	gpu := res.GPUs > 0
	if gpu {
		if res.GPUs > 1 {
			return 0, refuse("Resources.GPUs", strconv.Itoa(res.GPUs), "a Cloud Run task has at most one GPU")
		}
		typ := res.GPUType
		if typ == "" {
			typ = DefaultGPUType
		}
		limits["nvidia.com/gpu"] = "1"
		task.NodeSelector = &runpb.NodeSelector{Accelerator: typ}
		if res.CPU == 0 {
			res.CPU = gpuMinCPU
		}
		if res.MemoryBytes == 0 {
			res.MemoryBytes = gpuMinMemory
		}
		if res.CPU < gpuMinCPU || res.MemoryBytes < gpuMinMemory {
			return 0, invalid("Resources", fmt.Sprintf("%g CPU, %d bytes", res.CPU, res.MemoryBytes), "a GPU task needs at least 4 CPUs and 16 GiB of memory on Cloud Run")
		}
	}
	if res.CPU > 0 {
		cpu := strconv.FormatFloat(res.CPU, 'g', -1, 64)
		switch {
		case res.CPU < minCPU:
			return 0, invalid("Resources.CPU", cpu, "Cloud Run's minimum is 0.08 CPU")
		case res.CPU > maxCPU:
			return 0, invalid("Resources.CPU", cpu, "Cloud Run's maximum is 8 CPUs")
		case res.CPU > 1 && res.CPU != 2 && res.CPU != 4 && res.CPU != 6 && res.CPU != 8:
			return 0, invalid("Resources.CPU", cpu, "above 1, Cloud Run takes 2, 4, 6 or 8 CPUs")
		}
	}
	if res.MemoryBytes > 0 {
		m := strconv.FormatInt(res.MemoryBytes, 10)
		switch {
		case res.MemoryBytes < minMemory:
			return 0, invalid("Resources.MemoryBytes", m, "a Cloud Run job needs at least 512 MiB")
		case res.MemoryBytes > maxMemory:
			return 0, invalid("Resources.MemoryBytes", m, "Cloud Run's maximum is 32 GiB")
		}
	}
	if err := pairCPUAndMemory(&res); err != nil {
		return 0, err
	}
	if res.CPU > 0 {
		limits["cpu"] = cpuQuantity(res.CPU)
	}
	if res.MemoryBytes > 0 {
		// Cloud Run counts memory in MiB; round up, never below what was
		// asked.
		limits["memory"] = strconv.FormatInt((res.MemoryBytes+mib-1)/mib, 10) + "Mi"
	}
	if len(limits) > 0 {
		c.Resources = &runpb.ResourceRequirements{Limits: limits}
	}

	limit := MaxTimeout
	if gpu {
		limit = MaxGPUTimeout
	}
	switch {
	case s.Timeout == 0:
		return limit, nil
	case s.Timeout > limit:
		return 0, invalid("Timeout", s.Timeout.String(), "longer than Cloud Run's task timeout limit of "+limit.String())
	}
	// Cloud Run counts whole seconds; round up.
	return (s.Timeout + time.Second - 1).Truncate(time.Second), nil
}

// volumes maps Mounts and Secrets.
func volumes(s *gantry.Spec, c *runpb.Container, task *runpb.TaskTemplate) error {
	add := func(v *runpb.Volume, target string) {
		v.Name = "v" + strconv.Itoa(len(task.Volumes))
		task.Volumes = append(task.Volumes, v)
		c.VolumeMounts = append(c.VolumeMounts, &runpb.VolumeMount{Name: v.Name, MountPath: target})
	}
	targets := map[string]string{}
	for i, m := range s.Mounts {
		f := fmt.Sprintf("Mounts[%d]", i)
		targets[path.Clean(m.Target)] = f
		switch m.Type {
		case gantry.MountTmpfs:
			if m.ReadOnly {
				return refuse(f+".ReadOnly", "true", "an in-memory volume is always writable")
			}
			ed := &runpb.EmptyDirVolumeSource{Medium: runpb.EmptyDirVolumeSource_MEMORY}
			if m.SizeBytes > 0 {
				ed.SizeLimit = strconv.FormatInt((m.SizeBytes+mib-1)/mib, 10) + "Mi"
			}
			add(&runpb.Volume{VolumeType: &runpb.Volume_EmptyDir{EmptyDir: ed}}, m.Target)
		case gantry.MountGCS:
			if strings.Contains(m.Source, "/") {
				return invalid(f+".Source", m.Source, "a Cloud Storage mount takes a bucket name")
			}
			add(&runpb.Volume{VolumeType: &runpb.Volume_Gcs{Gcs: &runpb.GCSVolumeSource{Bucket: m.Source, ReadOnly: m.ReadOnly}}}, m.Target)
		case gantry.MountNFS:
			server, p, _ := strings.Cut(m.Source, ":")
			add(&runpb.Volume{VolumeType: &runpb.Volume_Nfs{Nfs: &runpb.NFSVolumeSource{Server: server, Path: p, ReadOnly: m.ReadOnly}}}, m.Target)
		case gantry.MountBind:
			return refuse(f+".Type", string(m.Type), "a job has no host to bind from; use tmpfs, gcs or nfs")
		default:
			return refuse(f+".Type", string(m.Type), "Cloud Run has no named volumes; use tmpfs, gcs or nfs")
		}
	}
	for i, sec := range s.Secrets {
		f := fmt.Sprintf("Secrets[%d]", i)
		version := sec.Version
		if version == "" {
			version = "latest"
		}
		if sec.Env != "" {
			c.Env = append(c.Env, &runpb.EnvVar{Name: sec.Env, Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{
				SecretKeyRef: &runpb.SecretKeySelector{Secret: sec.Name, Version: version},
			}}})
			continue
		}
		// A secret volume is a directory holding the secret's files.
		dir, file := path.Split(path.Clean(sec.Path))
		dir = path.Clean(dir)
		if dir == "/" {
			return refuse(f+".Path", sec.Path, "Cloud Run mounts a secret as a directory, which cannot be /")
		}
		if other, ok := targets[dir]; ok {
			return refuse(f+".Path", sec.Path, "its directory is already the mount of "+other+"; Cloud Run mounts one volume per directory")
		}
		targets[dir] = f
		add(&runpb.Volume{VolumeType: &runpb.Volume_Secret{Secret: &runpb.SecretVolumeSource{
			Secret: sec.Name,
			Items:  []*runpb.VersionToPath{{Path: file, Version: version}},
		}}}, dir)
	}
	return nil
}
