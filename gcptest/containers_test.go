package gcptest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"

	"github.com/gantryhq/gantry/gcptest"
)

func tcpProbe(port int32) *runpb.Probe {
	return &runpb.Probe{
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 60,
		ProbeType: &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: port}},
	}
}

// agentShapedJob is a job of the shape cloudrun writes with the agent: an
// in-memory volume; "main", which depends on "gantry-agent" and mounts the
// volume at /gantry; "gantry-agent", with a TCP startup probe on port.
// Both run sh scripts: the sidecar's writes /gantry/ready and listens on
// port (with nc) until main is done; main's reads the file.
func agentShapedJob(sidecarScript string, port int32) *runpb.Job {
	mount := []*runpb.VolumeMount{{Name: "gantry-agent", MountPath: "/gantry"}}
	return &runpb.Job{Template: &runpb.ExecutionTemplate{Template: &runpb.TaskTemplate{
		Retries: &runpb.TaskTemplate_MaxRetries{MaxRetries: 0},
		Volumes: []*runpb.Volume{{Name: "gantry-agent", VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{
			Medium: runpb.EmptyDirVolumeSource_MEMORY, SizeLimit: "64Mi",
		}}}},
		Containers: []*runpb.Container{
			{
				Name: "main", Image: "busybox",
				Command:      []string{"sh", "-c", `cat "$1"`, "sh"},
				Args:         []string{"/gantry/ready"},
				VolumeMounts: mount,
				DependsOn:    []string{"gantry-agent"},
			},
			{
				Name: "gantry-agent", Image: "agent",
				Command:      []string{"sh"},
				Args:         []string{"-c", sidecarScript, "sh", "/gantry/ready", strconv.Itoa(int(port))},
				VolumeMounts: mount,
				Resources:    &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "1", "memory": "128Mi"}},
				StartupProbe: tcpProbe(port),
			},
		},
	}}}
}

// TestMultiContainerRules sends one CreateJob per rule about the
// containers of a task, their volumes and probes, each broken once, and
// expects INVALID_ARGUMENT with a message naming the field; an UpdateJob
// and RunJob overrides are held to the same rules.
func TestMultiContainerRules(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	main := func(j *runpb.Job) *runpb.Container { return j.Template.Template.Containers[0] }
	side := func(j *runpb.Job) *runpb.Container { return j.Template.Template.Containers[1] }
	probe := func(j *runpb.Job) *runpb.Probe { return side(j).StartupProbe }
	for _, tc := range []struct {
		name, want string
		mutate     func(*runpb.Job)
	}{
		{"an unnamed container among two", "containers[1].name is required", func(j *runpb.Job) { side(j).Name = ""; main(j).DependsOn = nil }},
		{"depends_on a container without a startup probe", "Dependent container 'gantry-agent' must have startup probe specified", func(j *runpb.Job) { side(j).StartupProbe = nil }},
		{"depends_on named twice", "named twice", func(j *runpb.Job) { main(j).DependsOn = []string{"gantry-agent", "gantry-agent"} }},
		{"depends_on a cycle", "cycle: main -> gantry-agent -> main", func(j *runpb.Job) {
			main(j).StartupProbe = tcpProbe(9100)
			side(j).DependsOn = []string{"main"}
		}},
		{"mount path relative", "must be an absolute path", func(j *runpb.Job) { main(j).VolumeMounts[0].MountPath = "gantry" }},
		{"mount path /proc", "at /proc or under it", func(j *runpb.Job) { main(j).VolumeMounts[0].MountPath = "/proc" }},
		{"mount path under /dev", "at /dev or under it", func(j *runpb.Job) { main(j).VolumeMounts[0].MountPath = "/dev/shm" }},
		{"mount path under /sys", "at /sys or under it", func(j *runpb.Job) { main(j).VolumeMounts[0].MountPath = "/sys/fs/x" }},
		{"mount path root", "root", func(j *runpb.Job) { main(j).VolumeMounts[0].MountPath = "/" }},
		{"sub_path absolute", "sub_path", func(j *runpb.Job) { main(j).VolumeMounts[0].SubPath = "/x" }},
		{"sub_path leaving the volume", "sub_path", func(j *runpb.Job) { main(j).VolumeMounts[0].SubPath = "a/../../x" }},
		{"mount of an undeclared volume", "is not the name of a volume", func(j *runpb.Job) { side(j).VolumeMounts[0].Name = "other" }},
		{"empty_dir medium unknown", "medium 7", func(j *runpb.Job) {
			j.Template.Template.Volumes[0].GetEmptyDir().Medium = 7
		}},
		{"empty_dir size_limit not a quantity", "size_limit", func(j *runpb.Job) { j.Template.Template.Volumes[0].GetEmptyDir().SizeLimit = "lots" }},
		{"empty_dir size_limit zero", "size_limit", func(j *runpb.Job) { j.Template.Template.Volumes[0].GetEmptyDir().SizeLimit = "0" }},
		{"empty_dir size_limit in fractions of a byte", "size_limit", func(j *runpb.Job) { j.Template.Template.Volumes[0].GetEmptyDir().SizeLimit = "0.5" }},
		{"DISK without size_limit", "required for a DISK", func(j *runpb.Job) {
			ed := j.Template.Template.Volumes[0].GetEmptyDir()
			ed.Medium, ed.SizeLimit = runpb.EmptyDirVolumeSource_DISK, ""
		}},
		{"probe without a type", "needs one of", func(j *runpb.Job) { probe(j).ProbeType = nil }},
		{"probe port above 65535", "port 70000", func(j *runpb.Job) { probe(j).GetTcpSocket().Port = 70000 }},
		{"probe port negative", "port -1", func(j *runpb.Job) { probe(j).GetTcpSocket().Port = -1 }},
		{"probe port unset without a container port", "names no port", func(j *runpb.Job) { probe(j).GetTcpSocket().Port = 0 }},
		{"initial delay above 240", "initial_delay_seconds 241", func(j *runpb.Job) { probe(j).InitialDelaySeconds = 241 }},
		{"initial delay negative", "initial_delay_seconds -1", func(j *runpb.Job) { probe(j).InitialDelaySeconds = -1 }},
		{"timeout above 3600", "timeout_seconds 3601", func(j *runpb.Job) { probe(j).TimeoutSeconds = 3601 }},
		{"period above 240", "period_seconds 241", func(j *runpb.Job) { p := probe(j); p.PeriodSeconds, p.FailureThreshold = 241, 1 }},
		{"timeout above period", "must not be greater than period_seconds", func(j *runpb.Job) { p := probe(j); p.TimeoutSeconds, p.PeriodSeconds = 5, 3 }},
		{"failure threshold negative", "failure_threshold -1", func(j *runpb.Job) { probe(j).FailureThreshold = -1 }},
		{"threshold times period above 240", "is 250 seconds", func(j *runpb.Job) { p := probe(j); p.FailureThreshold, p.PeriodSeconds = 25, 10 }},
		{"default threshold times period above 240", "is 243 seconds", func(j *runpb.Job) { p := probe(j); p.FailureThreshold, p.PeriodSeconds, p.TimeoutSeconds = 0, 81, 1 }},
		{"http path without a slash", "must begin with '/'", func(j *runpb.Job) {
			probe(j).ProbeType = &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{Path: "ready", Port: 9000}}
		}},
		{"http header name with a space", "not a valid HTTP header name", func(j *runpb.Job) {
			probe(j).ProbeType = &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{Port: 9000, HttpHeaders: []*runpb.HTTPHeader{{Name: "a b"}}}}
		}},
		{"grpc port above 65535", "port 65536", func(j *runpb.Job) {
			probe(j).ProbeType = &runpb.Probe_Grpc{Grpc: &runpb.GRPCAction{Port: 65536}}
		}},
		{"liveness probe", "liveness_probe", func(j *runpb.Job) { main(j).LivenessProbe = tcpProbe(9000) }},
		{"readiness probe", "readiness_probe", func(j *runpb.Job) { main(j).ReadinessProbe = tcpProbe(9000) }},
		{"two ports", "only one port", func(j *runpb.Job) {
			main(j).Ports = []*runpb.ContainerPort{{ContainerPort: 1}, {ContainerPort: 2}}
		}},
		{"port zero", "container_port 0", func(j *runpb.Job) { main(j).Ports = []*runpb.ContainerPort{{}} }},
		{"1001 arguments", "1001 arguments", func(j *runpb.Job) { main(j).Args = make([]string, 1001) }},
		{"total memory above 32Gi", "total", func(j *runpb.Job) {
			main(j).Resources = &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "8", "memory": "32Gi"}}
		}},
		{"total CPU above 8", "total 9.000 vCPU", func(j *runpb.Job) {
			main(j).Resources = &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "8", "memory": "4Gi"}}
		}},
		{"total memory above 4Gi with 1.5 CPU", "needs at least 2 vCPU", func(j *runpb.Job) {
			main(j).Resources = &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "0.5", "memory": "4Gi"}}
			side(j).Resources.Limits["memory"] = "1Gi"
		}},
		{"a sidecar's memory not a quantity", "memory", func(j *runpb.Job) { side(j).Resources.Limits["memory"] = "lots" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := agentShapedJob("true", 9000)
			tc.mutate(job)
			_, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, JobId: "multi", Job: job})
			if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CreateJob: %v, want INVALID_ARGUMENT saying %q", err, tc.want)
			}
		})
	}

	e.createJob(t, "multi", agentShapedJob("true", 9000))
	bad := agentShapedJob("true", 9000)
	bad.Name = parent + "/jobs/multi"
	bad.Template.Template.Containers[1].DependsOn = []string{"main"}
	bad.Template.Template.Containers[0].StartupProbe = tcpProbe(9001)
	if _, err := e.jobs.UpdateJob(ctx, &runpb.UpdateJobRequest{Job: bad}); codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("UpdateJob with a cycle: %v, want INVALID_ARGUMENT", err)
	}
	for _, o := range []*runpb.RunJobRequest_Overrides{
		{ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Name: "main", Args: []string{"a"}}, {Name: "main", Args: []string{"b"}}}},
		{ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Name: "main", Args: make([]string, 1001)}}},
		{ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Args: []string{"a"}}}},
	} {
		if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/multi", Overrides: o}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("RunJob with overrides %v: %v, want INVALID_ARGUMENT", o, err)
		}
	}
}
