package gcptest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gantryhq/gantry/gcptest"
)

// TestCreateJobRules sends one CreateJob per rule of RULES.md that a
// request can break, and expects the status code Cloud Run returns.
func TestCreateJobRules(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	manyLabels := map[string]string{}
	for i := range 65 {
		manyLabels[fmt.Sprintf("k%d", i)] = "v"
	}
	manyEnv := envVars(1001)
	containers := func(n int) []*runpb.Container {
		cs := make([]*runpb.Container, n)
		for i := range cs {
			cs[i] = &runpb.Container{Name: fmt.Sprintf("c%d", i), Image: "busybox", Command: []string{"true"}}
		}
		return cs
	}
	for _, tc := range []struct {
		name   string
		parent string
		id     string
		mutate func(*runpb.Job) *runpb.Job
		want   codes.Code
	}{
		{name: "parent without locations", parent: "projects/proj"},
		{name: "parent with wildcard location", parent: "projects/proj/locations/-"},
		{name: "job missing", mutate: func(*runpb.Job) *runpb.Job { return nil }},
		{name: "job id uppercase", id: "MyJob"},
		{name: "job id starts with digit", id: "1job"},
		{name: "job id ends with hyphen", id: "job-"},
		{name: "job id underscore", id: "my_job"},
		{name: "job id 64 characters", id: "j" + strings.Repeat("a", 63)},
		{name: "label in run.googleapis.com", mutate: func(j *runpb.Job) *runpb.Job {
			j.Labels = map[string]string{"run.googleapis.com/x": "y"}
			return j
		}},
		{name: "label in serving.knative.dev", mutate: func(j *runpb.Job) *runpb.Job {
			j.Labels = map[string]string{"serving.knative.dev/x": "y"}
			return j
		}},
		{name: "label key uppercase", mutate: func(j *runpb.Job) *runpb.Job { j.Labels = map[string]string{"Env": "x"}; return j }},
		{name: "label key starts with digit", mutate: func(j *runpb.Job) *runpb.Job { j.Labels = map[string]string{"1env": "x"}; return j }},
		{name: "label key empty", mutate: func(j *runpb.Job) *runpb.Job { j.Labels = map[string]string{"": "x"}; return j }},
		{name: "label key 64 characters", mutate: func(j *runpb.Job) *runpb.Job {
			j.Labels = map[string]string{"k" + strings.Repeat("a", 63): "x"}
			return j
		}},
		{name: "label value uppercase", mutate: func(j *runpb.Job) *runpb.Job { j.Labels = map[string]string{"env": "Prod"}; return j }},
		{name: "label value 64 characters", mutate: func(j *runpb.Job) *runpb.Job {
			j.Labels = map[string]string{"env": strings.Repeat("a", 64)}
			return j
		}},
		{name: "65 labels", mutate: func(j *runpb.Job) *runpb.Job { j.Labels = manyLabels; return j }},
		{name: "execution template label in run.googleapis.com", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Labels = map[string]string{"run.googleapis.com/x": "y"}
			return j
		}},
		{name: "annotation in run.googleapis.com", mutate: func(j *runpb.Job) *runpb.Job {
			j.Annotations = map[string]string{"run.googleapis.com/launch-stage": "BETA"}
			return j
		}},
		{name: "annotation in cloud.googleapis.com", mutate: func(j *runpb.Job) *runpb.Job {
			j.Annotations = map[string]string{"cloud.googleapis.com/x": "y"}
			return j
		}},
		{name: "annotation name with space", mutate: func(j *runpb.Job) *runpb.Job {
			j.Annotations = map[string]string{"example.com/a b": "y"}
			return j
		}},
		{name: "annotation prefix not a DNS subdomain", mutate: func(j *runpb.Job) *runpb.Job {
			j.Annotations = map[string]string{"Example_Com/a": "y"}
			return j
		}},
		{name: "annotations over 256 KiB", mutate: func(j *runpb.Job) *runpb.Job {
			j.Annotations = map[string]string{"example.com/big": strings.Repeat("x", 256*1024)}
			return j
		}},
		{name: "template missing", mutate: func(j *runpb.Job) *runpb.Job { j.Template = nil; return j }},
		{name: "task template missing", mutate: func(j *runpb.Job) *runpb.Job { j.Template.Template = nil; return j }},
		{name: "no containers", mutate: func(j *runpb.Job) *runpb.Job { j.Template.Template.Containers = nil; return j }},
		{name: "11 containers", mutate: func(j *runpb.Job) *runpb.Job { j.Template.Template.Containers = containers(11); return j }},
		{name: "image missing", mutate: func(j *runpb.Job) *runpb.Job { j.Template.Template.Containers[0].Image = ""; return j }},
		{name: "duplicate container names", mutate: func(j *runpb.Job) *runpb.Job {
			cs := containers(2)
			cs[1].Name = cs[0].Name
			j.Template.Template.Containers = cs
			return j
		}},
		{name: "container name not a DNS label", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Name = "Main_Container"
			return j
		}},
		{name: "negative task count", mutate: func(j *runpb.Job) *runpb.Job { j.Template.TaskCount = -1; return j }},
		{name: "10001 tasks", mutate: func(j *runpb.Job) *runpb.Job { j.Template.TaskCount = 10001; return j }},
		{name: "negative parallelism", mutate: func(j *runpb.Job) *runpb.Job { j.Template.Parallelism = -1; return j }},
		{name: "parallelism above task count", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.TaskCount, j.Template.Parallelism = 2, 3
			return j
		}},
		{name: "11 retries", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Retries = &runpb.TaskTemplate_MaxRetries{MaxRetries: 11}
			return j
		}},
		{name: "negative retries", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Retries = &runpb.TaskTemplate_MaxRetries{MaxRetries: -1}
			return j
		}},
		{name: "timeout under a second", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Timeout = durationpb.New(500 * time.Millisecond)
			return j
		}},
		{name: "timeout over 168 hours", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Timeout = durationpb.New(169 * time.Hour)
			return j
		}},
		{name: "reserved env CLOUD_RUN_TASK_INDEX", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "CLOUD_RUN_TASK_INDEX"}}
			return j
		}},
		{name: "reserved env PORT", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "PORT"}}
			return j
		}},
		{name: "env name with =", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "A=B"}}
			return j
		}},
		{name: "duplicate env", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "A"}, {Name: "A"}}
			return j
		}},
		{name: "1001 env vars", mutate: func(j *runpb.Job) *runpb.Job { j.Template.Template.Containers[0].Env = manyEnv; return j }},
		{name: "relative working dir", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].WorkingDir = "work"
			return j
		}},
		{name: "container name with uppercase", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Name = "Main"
			return j
		}},
		{name: "container name ending with hyphen", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Name = "main-"
			return j
		}},
		{name: "env name over 32768 characters", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: strings.Repeat("A", 32769)}}
			return j
		}},
		{name: "unsupported resource", mutate: limits(map[string]string{"ephemeral-storage": "1Gi"})},
		{name: "cpu 3", mutate: limits(map[string]string{"cpu": "3"})},
		{name: "cpu 16", mutate: limits(map[string]string{"cpu": "16"})},
		{name: "cpu under 0.08", mutate: limits(map[string]string{"cpu": "0.05"})},
		{name: "cpu finer than 0.001", mutate: limits(map[string]string{"cpu": "0.5005"})},
		{name: "cpu not a quantity", mutate: limits(map[string]string{"cpu": "one"})},
		{name: "memory under 512Mi", mutate: limits(map[string]string{"memory": "256Mi"})},
		{name: "memory over 32Gi", mutate: limits(map[string]string{"memory": "33Gi"})},
		{name: "memory not a quantity", mutate: limits(map[string]string{"memory": "1 GB"})},
		{name: "memory in fractions of a byte", mutate: limits(map[string]string{"memory": "536870912.5"})},
		{name: "1 cpu with 8Gi", mutate: limits(map[string]string{"cpu": "1", "memory": "8Gi"})},
		{name: "4 cpu with 1Gi", mutate: limits(map[string]string{"cpu": "4", "memory": "1Gi"})},
		{name: "8 cpu with 2Gi", mutate: limits(map[string]string{"cpu": "8", "memory": "2Gi"})},
		{name: "0.25 cpu with 1Gi", mutate: limits(map[string]string{"cpu": "250m", "memory": "1Gi"})},
		{name: "0.5 cpu with 2Gi", mutate: limits(map[string]string{"cpu": "0.5", "memory": "2Gi"})},
		{name: "default cpu with 5Gi", mutate: limits(map[string]string{"memory": "5Gi"})},
		{name: "2 GPUs", mutate: limits(map[string]string{"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"})},
		{name: "GPU task timeout over an hour", mutate: func(j *runpb.Job) *runpb.Job {
			j = limits(map[string]string{"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"})(j)
			j.Template.Template.Timeout = durationpb.New(2 * time.Hour)
			return j
		}},
		{name: "volume without a name", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Volumes = []*runpb.Volume{memVolume("")}
			return j
		}},
		{name: "volume name not a DNS label", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Volumes = []*runpb.Volume{memVolume("Scratch_1")}
			return j
		}},
		{name: "duplicate volume names", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Volumes = []*runpb.Volume{memVolume("v"), memVolume("v")}
			return j
		}},
		{name: "mount of an undefined volume", mutate: mounts([]*runpb.Volume{memVolume("v")}, &runpb.VolumeMount{Name: "w", MountPath: "/w"})},
		{name: "mount without a path", mutate: mounts([]*runpb.Volume{memVolume("v")}, &runpb.VolumeMount{Name: "v"})},
		{name: "mount path with a colon", mutate: mounts([]*runpb.Volume{memVolume("v")}, &runpb.VolumeMount{Name: "v", MountPath: "/a:b"})},
		{name: "two mounts at one path", mutate: mounts([]*runpb.Volume{memVolume("v"), memVolume("w")},
			&runpb.VolumeMount{Name: "v", MountPath: "/data"}, &runpb.VolumeMount{Name: "w", MountPath: "/data"})},
		{name: "Cloud SQL volume mounted elsewhere than /cloudsql", mutate: mounts([]*runpb.Volume{sqlVolume("sql")}, &runpb.VolumeMount{Name: "sql", MountPath: "/db"})},
		{name: "depends_on an unknown container", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].DependsOn = []string{"sidecar"}
			return j
		}},
		{name: "depends_on itself", mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Name = "main"
			j.Template.Template.Containers[0].DependsOn = []string{"main"}
			return j
		}},
		{name: "start_execution_token", want: codes.Unimplemented, mutate: func(j *runpb.Job) *runpb.Job {
			j.CreateExecution = &runpb.Job_StartExecutionToken{StartExecutionToken: "now"}
			return j
		}},
		{name: "delay_execution", want: codes.Unimplemented, mutate: func(j *runpb.Job) *runpb.Job {
			j.Template.DelayExecution = proto.Bool(true)
			return j
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, id, job := parent, "rule", shJob("true")
			if tc.parent != "" {
				p = tc.parent
			}
			if tc.id != "" {
				id = tc.id
			}
			if tc.mutate != nil {
				job = tc.mutate(job)
			}
			want := tc.want
			if want == codes.OK {
				want = codes.InvalidArgument
			}
			_, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: p, JobId: id, Job: job})
			if got := codeOf(err); got != want {
				t.Errorf("CreateJob: %v, want %v", err, want)
			}
		})
	}
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: parent + "/jobs/rule"}); codeOf(err) != codes.NotFound {
		t.Errorf("a rejected CreateJob stored the job: GetJob = %v", err)
	}
}

// envVars returns n distinct environment variables.
func envVars(n int) []*runpb.EnvVar {
	vs := make([]*runpb.EnvVar, n)
	for i := range vs {
		vs[i] = &runpb.EnvVar{Name: fmt.Sprintf("V%d", i)}
	}
	return vs
}

// limits returns a change that sets the first container's
// resources.limits.
func limits(l map[string]string) func(*runpb.Job) *runpb.Job {
	return func(j *runpb.Job) *runpb.Job {
		j.Template.Template.Containers[0].Resources = &runpb.ResourceRequirements{Limits: l}
		return j
	}
}

// mounts returns a change that gives the task template volumes and the
// first container mounts.
func mounts(vs []*runpb.Volume, ms ...*runpb.VolumeMount) func(*runpb.Job) *runpb.Job {
	return func(j *runpb.Job) *runpb.Job {
		j.Template.Template.Volumes = vs
		j.Template.Template.Containers[0].VolumeMounts = ms
		return j
	}
}

func memVolume(name string) *runpb.Volume {
	return &runpb.Volume{Name: name, VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{}}}
}

func sqlVolume(name string) *runpb.Volume {
	return &runpb.Volume{Name: name, VolumeType: &runpb.Volume_CloudSqlInstance{CloudSqlInstance: &runpb.CloudSqlInstance{Instances: []string{"p:r:db"}}}}
}

// TestAcceptedEdges checks values at the limits are accepted, and that an
// empty job_id makes the server choose one.
func TestAcceptedEdges(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	job := shJob("true")
	job.Labels = map[string]string{"k" + strings.Repeat("a", 62): strings.Repeat("v", 63), "équipe": "ünï", "empty": ""}
	job.Annotations = map[string]string{"example.com/note": "anything at all", "plain": "x"}
	job.Template.TaskCount, job.Template.Parallelism = 10000, 0
	job.Template.Template.Retries = &runpb.TaskTemplate_MaxRetries{MaxRetries: 10}
	job.Template.Template.Timeout = durationpb.New(168 * time.Hour)
	e.createJob(t, "j"+strings.Repeat("a", 62), job)
	op, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, Job: shJob("true")})
	if err != nil {
		t.Fatal(err)
	}
	j, err := op.Wait(ctx)
	if err != nil || !strings.HasPrefix(j.Name, parent+"/jobs/") {
		t.Errorf("CreateJob without job_id: %v, %v", j.GetName(), err)
	}
}

// TestAcceptedResources checks that every form of limit, volume and
// container dependency Cloud Run takes is accepted and returned as given.
func TestAcceptedResources(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	for i, tc := range []struct {
		name   string
		mutate func(*runpb.Job) *runpb.Job
	}{
		{"1000m and 512Mi", limits(map[string]string{"cpu": "1000m", "memory": "512Mi"})},
		{"0.08 cpu", limits(map[string]string{"cpu": "0.08"})},
		{"500m and 1Gi", limits(map[string]string{"cpu": "500m", "memory": "1Gi"})},
		{"1 cpu and 4Gi", limits(map[string]string{"cpu": "1", "memory": "4Gi"})},
		{"2 cpu and 1.5Gi", limits(map[string]string{"cpu": "2", "memory": "1.5Gi"})},
		{"4 cpu and 2Gi", limits(map[string]string{"cpu": "4", "memory": "2Gi"})},
		{"8 cpu and 32Gi", limits(map[string]string{"cpu": "8", "memory": "32Gi"})},
		{"memory in G", limits(map[string]string{"memory": "1G"})},
		{"a GPU for an hour", func(j *runpb.Job) *runpb.Job {
			j = limits(map[string]string{"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"})(j)
			j.Template.Template.Timeout = durationpb.New(time.Hour)
			return j
		}},
		{"container name starting with a digit", func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].Name = "1st"
			return j
		}},
		{"volumes and mounts", mounts([]*runpb.Volume{memVolume("scratch"), sqlVolume("sql")},
			&runpb.VolumeMount{Name: "scratch", MountPath: "/scratch"}, &runpb.VolumeMount{Name: "sql"})},
		{"depends_on a sidecar", func(j *runpb.Job) *runpb.Job {
			cs := j.Template.Template.Containers
			cs[0].Name, cs[0].DependsOn = "main", []string{"proxy"}
			j.Template.Template.Containers = append(cs, &runpb.Container{Name: "proxy", Image: "proxy", StartupProbe: tcpProbe(9000)})
			return j
		}},
		{"the job cloudrun writes with the agent", func(*runpb.Job) *runpb.Job { return agentShapedJob("sh", 9001) }},
		{"probes at their limits", func(j *runpb.Job) *runpb.Job {
			j.Template.Template.Containers[0].StartupProbe = &runpb.Probe{
				InitialDelaySeconds: 240, TimeoutSeconds: 240, PeriodSeconds: 240, FailureThreshold: 1,
				ProbeType: &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{Path: "/ready", Port: 65535, HttpHeaders: []*runpb.HTTPHeader{{Name: "X-Probe", Value: "1"}}}},
			}
			return j
		}},
		{"probe port from the container", func(j *runpb.Job) *runpb.Job {
			c := j.Template.Template.Containers[0]
			c.Ports = []*runpb.ContainerPort{{ContainerPort: 8080}}
			c.StartupProbe = &runpb.Probe{ProbeType: &runpb.Probe_Grpc{Grpc: &runpb.GRPCAction{}}}
			return j
		}},
		{"a disk volume", mounts([]*runpb.Volume{{Name: "disk", VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{Medium: runpb.EmptyDirVolumeSource_DISK, SizeLimit: "10Gi"}}}},
			&runpb.VolumeMount{Name: "disk", MountPath: "/disk", SubPath: "a/b"})},
		{"a sidecar with little memory", func(j *runpb.Job) *runpb.Job {
			cs := j.Template.Template.Containers
			cs[0].Name = "main"
			j.Template.Template.Containers = append(cs, &runpb.Container{Name: "side", Image: "side",
				Resources: &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "0.5", "memory": "128Mi"}}})
			return j
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.mutate(shJob("true"))
			got := e.createJob(t, fmt.Sprintf("edge-%d", i), clone(want))
			for k, c := range want.Template.Template.Containers {
				if diff := cmp.Diff(c, got.Template.Template.Containers[k], protocmp.Transform()); diff != "" {
					t.Errorf("container %d came back changed (-sent +got):\n%s", k, diff)
				}
			}
		})
	}
}

func TestConflictsAndPreconditions(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	withEnv := shJob("true")
	withEnv.Template.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "ALREADY"}}
	j := e.createJob(t, "dup", withEnv)
	gpu := e.createJob(t, "gpu", limits(map[string]string{"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"})(shJob("true")))
	missing := parent + "/jobs/missing"
	check := func(what string, err error, want codes.Code) {
		t.Helper()
		if got := codeOf(err); got != want {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, JobId: "dup", Job: shJob("true")})
	check("CreateJob of an existing job", err, codes.AlreadyExists)
	_, err = e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: missing})
	check("GetJob of a missing job", err, codes.NotFound)
	_, err = e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: "projects/proj/jobs/x"})
	check("GetJob with a malformed name", err, codes.InvalidArgument)
	_, err = e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: missing})
	check("RunJob of a missing job", err, codes.NotFound)
	_, err = e.jobs.DeleteJob(ctx, &runpb.DeleteJobRequest{Name: missing})
	check("DeleteJob of a missing job", err, codes.NotFound)
	upd := shJob("true")
	upd.Name = missing
	_, err = e.jobs.UpdateJob(ctx, &runpb.UpdateJobRequest{Job: upd})
	check("UpdateJob of a missing job", err, codes.NotFound)
	_, err = e.execs.GetExecution(ctx, &runpb.GetExecutionRequest{Name: parent + "/jobs/dup/executions/dup-zzzzz"})
	check("GetExecution of a missing execution", err, codes.NotFound)
	_, err = e.tasks.GetTask(ctx, &runpb.GetTaskRequest{Name: parent + "/jobs/dup/executions/dup-zzzzz/tasks/dup-zzzzz-task0"})
	check("GetTask of a missing task", err, codes.NotFound)
	it := e.execs.ListExecutions(ctx, &runpb.ListExecutionsRequest{Parent: missing})
	_, err = it.Next()
	check("ListExecutions of a missing job", err, codes.NotFound)

	stale := clone(j)
	stale.Etag = `"stale"`
	_, err = e.jobs.UpdateJob(ctx, &runpb.UpdateJobRequest{Job: stale})
	check("UpdateJob with a stale etag", err, codes.Aborted)
	_, err = e.jobs.DeleteJob(ctx, &runpb.DeleteJobRequest{Name: j.Name, Etag: `"stale"`})
	check("DeleteJob with a stale etag", err, codes.Aborted)
	_, err = e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: j.Name, Etag: `"stale"`})
	check("RunJob with a stale etag", err, codes.Aborted)

	for name, o := range map[string]*runpb.RunJobRequest_Overrides{
		"task_count over 10000":    {TaskCount: 10001},
		"timeout over 168 hours":   {Timeout: durationpb.New(200 * time.Hour)},
		"unknown container":        {ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Name: "nope"}}},
		"clear_args with args":     {ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Args: []string{"x"}, ClearArgs: true}}},
		"reserved env":             {ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Env: []*runpb.EnvVar{{Name: "CLOUD_RUN_JOB"}}}}},
		"env past 1000 variables":  {ContainerOverrides: []*runpb.RunJobRequest_Overrides_ContainerOverride{{Env: envVars(1000)}}},
		"GPU timeout over an hour": {Timeout: durationpb.New(2 * time.Hour)},
	} {
		target := j.Name
		if name == "GPU timeout over an hour" {
			target = gpu.Name
		}
		_, err = e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: target, Overrides: o})
		check("RunJob override "+name, err, codes.InvalidArgument)
	}

}

func TestUpdateValidateOnlyAllowMissing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	check := func(what string, err error, want codes.Code) {
		t.Helper()
		if got := codeOf(err); got != want {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	op, err := e.jobs.CreateJob(ctx, &runpb.CreateJobRequest{Parent: parent, JobId: "dry", Job: shJob("true"), ValidateOnly: true})
	if err != nil || !op.Done() {
		t.Fatalf("CreateJob validate_only: done %v, %v", op != nil && op.Done(), err)
	}
	_, err = e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: parent + "/jobs/dry"})
	check("GetJob after a validate_only create", err, codes.NotFound)

	upd := shJob("exit 0")
	upd.Name = parent + "/jobs/upserted"
	uop, err := e.jobs.UpdateJob(ctx, &runpb.UpdateJobRequest{Job: upd, AllowMissing: true})
	if err != nil {
		t.Fatalf("UpdateJob allow_missing: %v", err)
	}
	j, err := uop.Wait(ctx)
	if err != nil || j.Generation != 1 {
		t.Fatalf("UpdateJob allow_missing created %v, %v", j, err)
	}
	j.Template.TaskCount = 2
	j.Labels = map[string]string{"team": "a"}
	uop, err = e.jobs.UpdateJob(ctx, &runpb.UpdateJobRequest{Job: j})
	if err != nil {
		t.Fatalf("UpdateJob with the current etag: %v", err)
	}
	j2, err := uop.Wait(ctx)
	if err != nil || j2.Generation != 2 || j2.ObservedGeneration != 2 || j2.Uid != j.Uid || j2.Etag == j.Etag || j2.Template.TaskCount != 2 || j2.Labels["team"] != "a" {
		t.Errorf("updated job: %v, %v", j2, err)
	}
	_, err = e.jobs.UpdateJob(ctx, &runpb.UpdateJobRequest{Job: j})
	check("UpdateJob with the etag of generation 1", err, codes.Aborted)

	e.createJob(t, "busy", shJob("sleep 60"))
	rop, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/busy"})
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := rop.Metadata()
	dop, err := e.execs.DeleteExecution(ctx, &runpb.DeleteExecutionRequest{Name: meta.Name})
	if err != nil {
		t.Fatalf("DeleteExecution of a running execution: %v", err)
	}
	if _, err := dop.Wait(ctx); err != nil {
		t.Fatalf("DeleteExecution operation: %v", err)
	}
	_, err = e.execs.GetExecution(ctx, &runpb.GetExecutionRequest{Name: meta.Name})
	check("GetExecution after DeleteExecution", err, codes.NotFound)
	if n := len(e.listTasks(t, parent+"/jobs/busy/executions/-")); n != 0 {
		t.Errorf("%d tasks left after DeleteExecution", n)
	}
	if _, err := rop.Wait(ctx); codeOf(err) != codes.Canceled {
		t.Errorf("RunJob operation of the deleted execution: %v, want Canceled", err)
	}
	dj, err := e.jobs.DeleteJob(ctx, &runpb.DeleteJobRequest{Name: parent + "/jobs/busy"})
	if err != nil {
		t.Fatalf("DeleteJob once idle: %v", err)
	}
	if j, err := dj.Wait(ctx); err != nil || j.DeleteTime == nil {
		t.Errorf("DeleteJob operation: %v, %v", j, err)
	}
}

// TestDeleteJobWhileRunning deletes a job whose execution runs: Cloud Run
// accepts it and stops the execution. The job is gone at once; the
// operation finishes once the execution has stopped and been removed.
func TestDeleteJobWhileRunning(t *testing.T) {
	e := newEnv(t, gcptest.WithStopGracePeriod(100*time.Millisecond))
	ctx := context.Background()
	j := e.createJob(t, "doomed", shJob("sleep 60"))
	e.createJob(t, "bystander", shJob("true"))
	rop, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: j.Name})
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := rop.Metadata()
	e.waitRunning(t, meta.Name, 1)
	dop, err := e.jobs.DeleteJob(ctx, &runpb.DeleteJobRequest{Name: j.Name})
	if err != nil {
		t.Fatalf("DeleteJob with a running execution: %v", err)
	}
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: j.Name}); codeOf(err) != codes.NotFound {
		t.Errorf("GetJob right after DeleteJob: %v, want NotFound", err)
	}
	if _, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: j.Name}); codeOf(err) != codes.NotFound {
		t.Errorf("RunJob of the deleted job: %v, want NotFound", err)
	}
	deleted, err := dop.Wait(ctx)
	if err != nil || deleted.DeleteTime == nil || deleted.Uid != j.Uid {
		t.Fatalf("DeleteJob operation: %v, %v", deleted, err)
	}
	if _, err := e.execs.GetExecution(ctx, &runpb.GetExecutionRequest{Name: meta.Name}); codeOf(err) != codes.NotFound {
		t.Errorf("GetExecution once the delete is done: %v, want NotFound", err)
	}
	if n := len(e.listTasks(t, j.Name+"/executions/-")); n != 0 {
		t.Errorf("%d tasks of the deleted job remain", n)
	}
	if _, err := pollRun(t, rop); codeOf(err) != codes.Canceled {
		t.Errorf("RunJob operation of the deleted job's execution: %v, want Canceled", err)
	}
	if _, err := e.jobs.GetJob(ctx, &runpb.GetJobRequest{Name: parent + "/jobs/bystander"}); err != nil {
		t.Errorf("another job after the delete: %v", err)
	}
}

func clone(j *runpb.Job) *runpb.Job { return proto.Clone(j).(*runpb.Job) }

// TestListPaging pages through ListJobs with the raw client call, and
// checks that a page token is only good with the parameters it was
// issued for.
func TestListPaging(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	ctx := context.Background()
	for _, id := range []string{"page-a", "page-b", "page-c"} {
		e.createJob(t, id, shJob("true"))
	}
	var (
		names []string
		token string
	)
	it := e.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: parent, PageSize: 2})
	for {
		j, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, j.Name[len(parent+"/jobs/"):])
		if token == "" {
			token = it.PageInfo().Token
		}
	}
	if diff := cmp.Diff([]string{"page-a", "page-b", "page-c"}, names); diff != "" {
		t.Errorf("ListJobs by pages of 2 (-want +got):\n%s", diff)
	}
	if token == "" {
		t.Fatal("the first page of 2 of 3 jobs carried no next page token")
	}
	for what, req := range map[string]*runpb.ListJobsRequest{
		"a token with show_deleted changed": {Parent: parent, PageToken: token, ShowDeleted: true},
		"a token with another parent":       {Parent: "projects/other/locations/us-central1", PageToken: token},
		"a made-up token":                   {Parent: parent, PageToken: "not-a-token"},
		"a negative page_size":              {Parent: parent, PageSize: -1},
	} {
		if _, err := e.jobs.ListJobs(ctx, req).Next(); codeOf(err) != codes.InvalidArgument {
			t.Errorf("ListJobs with %s: %v, want InvalidArgument", what, err)
		}
	}
	if got, err := e.jobs.ListJobs(ctx, &runpb.ListJobsRequest{Parent: parent, PageToken: token, PageSize: 5}).Next(); err != nil || !strings.HasSuffix(got.GetName(), "/page-c") {
		t.Errorf("ListJobs with the token and another page_size: %v, %v; want page-c", got.GetName(), err)
	}
}
