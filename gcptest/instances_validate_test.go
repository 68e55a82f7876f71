package gcptest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/gantryhq/gantry/gcptest"
)

// TestInstanceValidation sends requests Cloud Run refuses and checks each
// answer's code; nothing is created.
func TestInstanceValidation(t *testing.T) {
	e := newInstEnv(t)
	ctx := context.Background()
	one := func(f func(*runpb.Instance)) *runpb.Instance {
		in := &runpb.Instance{LaunchStage: api.LaunchStage_BETA, Containers: []*runpb.Container{{Image: "busybox", Command: []string{"true"}}}}
		f(in)
		return in
	}
	two := func(f func(*runpb.Instance)) *runpb.Instance {
		return one(func(in *runpb.Instance) {
			in.Containers[0].Name = "main"
			in.Containers = append(in.Containers, &runpb.Container{Name: "side", Image: "busybox", StartupProbe: tcpProbe(9000)})
			f(in)
		})
	}
	gpu := &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}}
	for _, tc := range []struct {
		name, parent, id string
		in               *runpb.Instance
		code             codes.Code
		msg              string
	}{
		{"no instance", instParent, "a", nil, codes.InvalidArgument, "instance is required"},
		{"no launch stage", instParent, "a", one(func(in *runpb.Instance) { in.LaunchStage = 0 }), codes.InvalidArgument, "The launch stage annotation should be specified at least as BETA."},
		{"GA", instParent, "a", one(func(in *runpb.Instance) { in.LaunchStage = api.LaunchStage_GA }), codes.InvalidArgument, "not supported in the declared launch stage on resource a."},
		{"us-central1", "projects/p/locations/us-central1", "a", one(func(*runpb.Instance) {}), codes.InvalidArgument, "region us-central1"},
		{"europe-west1", "projects/p/locations/europe-west1", "a", one(func(*runpb.Instance) {}), codes.InvalidArgument, "region europe-west1"},
		{"upper case ID", instParent, "Hello", one(func(*runpb.Instance) {}), codes.InvalidArgument, "instance_id"},
		{"ID ends with a hyphen", instParent, "hello-", one(func(*runpb.Instance) {}), codes.InvalidArgument, "instance_id"},
		{"ID of 50 characters", instParent, strings.Repeat("a", 50), one(func(*runpb.Instance) {}), codes.InvalidArgument, "fewer than 50"},
		{"no container", instParent, "a", one(func(in *runpb.Instance) { in.Containers = nil }), codes.InvalidArgument, "at least one container"},
		{"eleven containers", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers = nil
			for _, n := range strings.Split("a b c d e f g h i j k", " ") {
				in.Containers = append(in.Containers, &runpb.Container{Name: n, Image: "busybox", Resources: &runpb.ResourceRequirements{Limits: map[string]string{"memory": "64Mi"}}})
			}
		}), codes.InvalidArgument, "at most 10 containers"},
		{"no image", instParent, "a", one(func(in *runpb.Instance) { in.Containers[0].Image = "" }), codes.InvalidArgument, "image is required"},
		{"two containers, one unnamed", instParent, "a", two(func(in *runpb.Instance) { in.Containers[1].Name = "" }), codes.InvalidArgument, "name is required"},
		{"two containers, two ports", instParent, "a", two(func(in *runpb.Instance) {
			for _, c := range in.Containers {
				c.Ports = []*runpb.ContainerPort{{ContainerPort: 8080}}
			}
		}), codes.InvalidArgument, "at most one container of an instance may"},
		{"port name", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers[0].Ports = []*runpb.ContainerPort{{Name: "h3", ContainerPort: 8080}}
		}), codes.InvalidArgument, "http1 or h2c"},
		{"port 70000", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers[0].Ports = []*runpb.ContainerPort{{ContainerPort: 70000}}
		}), codes.InvalidArgument, "container_port 70000"},
		{"PORT set", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers[0].Env = []*runpb.EnvVar{{Name: "PORT", Values: &runpb.EnvVar_Value{Value: "80"}}}
		}), codes.InvalidArgument, "reserved"},
		{"readiness probe", instParent, "a", one(func(in *runpb.Instance) { in.Containers[0].ReadinessProbe = tcpProbe(8080) }), codes.Unimplemented, "readiness_probe"},
		{"TCP liveness probe", instParent, "a", one(func(in *runpb.Instance) { in.Containers[0].LivenessProbe = tcpProbe(8080) }), codes.InvalidArgument, "HTTP or gRPC"},
		{"startup probe period", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers[0].StartupProbe = &runpb.Probe{TimeoutSeconds: 241, PeriodSeconds: 241, FailureThreshold: 1, ProbeType: &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: 8080}}}
		}), codes.InvalidArgument, "period_seconds 241"},
		{"startup probe without a port", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers[0].StartupProbe = &runpb.Probe{ProbeType: &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{}}}
		}), codes.InvalidArgument, "names no port"},
		{"dependency without a probe", instParent, "a", two(func(in *runpb.Instance) {
			in.Containers[1].StartupProbe = nil
			in.Containers[0].DependsOn = []string{"side"}
		}), codes.InvalidArgument, "Dependent container 'side' must have startup probe specified"},
		{"dependency on itself", instParent, "a", two(func(in *runpb.Instance) { in.Containers[0].DependsOn = []string{"main"} }), codes.InvalidArgument, "not the name of another container"},
		{"a cycle", instParent, "a", two(func(in *runpb.Instance) {
			in.Containers[0].StartupProbe = tcpProbe(9001)
			in.Containers[0].DependsOn = []string{"side"}
			in.Containers[1].DependsOn = []string{"main"}
		}), codes.InvalidArgument, "cycle"},
		{"a mount of no volume", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers[0].VolumeMounts = []*runpb.VolumeMount{{Name: "v", MountPath: "/data"}}
		}), codes.InvalidArgument, "not the name of a volume"},
		{"a mount under /proc", instParent, "a", one(func(in *runpb.Instance) {
			in.Volumes = []*runpb.Volume{{Name: "v", VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{}}}}
			in.Containers[0].VolumeMounts = []*runpb.VolumeMount{{Name: "v", MountPath: "/proc/x"}}
		}), codes.InvalidArgument, "/proc"},
		{"memory below 512Mi", instParent, "a", one(func(in *runpb.Instance) {
			in.Containers[0].Resources = &runpb.ResourceRequirements{Limits: map[string]string{"memory": "256Mi"}}
		}), codes.InvalidArgument, "512Mi to 32Gi"},
		{"restart policy", instParent, "a", one(func(in *runpb.Instance) { in.RestartPolicy = 4 }), codes.InvalidArgument, "restart_policy 4"},
		{"ingress", instParent, "a", one(func(in *runpb.Instance) { in.Ingress = 9 }), codes.InvalidArgument, "IngressTraffic"},
		{"node selector without an accelerator", instParent, "a", one(func(in *runpb.Instance) {
			in.NodeSelector = &runpb.NodeSelector{}
			in.Containers[0].Resources = gpu
		}), codes.InvalidArgument, "accelerator is required"},
		{"node selector without a GPU", instParent, "a", one(func(in *runpb.Instance) { in.NodeSelector = &runpb.NodeSelector{Accelerator: "nvidia-l4"} }), codes.InvalidArgument, "needs a container with a nvidia.com/gpu limit"},
		{"a GPU without a node selector", instParent, "a", one(func(in *runpb.Instance) { in.Containers[0].Resources = gpu }), codes.InvalidArgument, "needs instance.node_selector.accelerator"},
		{"a system label", instParent, "a", one(func(in *runpb.Instance) { in.Labels = map[string]string{"run.googleapis.com/x": "y"} }), codes.InvalidArgument, "namespace"},
		{"description", instParent, "a", one(func(in *runpb.Instance) { in.Description = strings.Repeat("d", 513) }), codes.InvalidArgument, "description"},
		{"IAP", instParent, "a", one(func(in *runpb.Instance) { in.IapEnabled = true }), codes.Unimplemented, "iap_enabled"},
		{"default URL disabled", instParent, "a", one(func(in *runpb.Instance) { in.DefaultUriDisabled = true }), codes.Unimplemented, "default_uri_disabled"},
		{"a bad parent", "projects/p", "a", one(func(*runpb.Instance) {}), codes.InvalidArgument, "parent"},
	} {
		_, err := e.instances.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: tc.parent, InstanceId: tc.id, Instance: tc.in})
		if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.code, tc.msg)
		}
	}
	// A GPU with its node selector is accepted (validate_only).
	if _, err := e.instances.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: instParent, InstanceId: "gpu", ValidateOnly: true, Instance: one(func(in *runpb.Instance) {
		in.NodeSelector = &runpb.NodeSelector{Accelerator: "nvidia-l4"}
		in.Containers[0].Resources = gpu
	})}); err != nil {
		t.Errorf("a GPU with a node selector: %v", err)
	}
	for _, n := range []string{"projects/p/locations/l/instances/-", "projects/p/locations/l/services/a"} {
		if _, err := e.instances.GetInstance(ctx, &runpb.GetInstanceRequest{Name: n}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("GetInstance(%s): %v", n, err)
		}
	}
	it := e.instances.ListInstances(ctx, &runpb.ListInstancesRequest{Parent: instParent})
	if in, err := it.Next(); err == nil {
		t.Errorf("a refused request created %s", in.Name)
	}
}

// TestInstanceRequests checks validate_only, the missing and existing
// instances' answers, etags, allow_missing, masks and listing.
func TestInstanceRequests(t *testing.T) {
	e := newInstEnv(t)
	ctx := context.Background()
	ok := shInstance("sleep 30", "x", runpb.Instance_NEVER)
	op, err := e.instances.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: instParent, InstanceId: "dry", Instance: ok, ValidateOnly: true})
	if err != nil || !op.Done() {
		t.Fatalf("validate_only: %v", err)
	}
	if _, err := e.instances.GetInstance(ctx, &runpb.GetInstanceRequest{Name: instParent + "/instances/dry"}); codeOf(err) != codes.NotFound {
		t.Errorf("validate_only created the instance: %v", err)
	}
	missing := instParent + "/instances/missing"
	if _, err := e.instances.UpdateInstance(ctx, &runpb.UpdateInstanceRequest{Instance: &runpb.Instance{Name: missing, LaunchStage: api.LaunchStage_BETA, Containers: ok.Containers}}); codeOf(err) != codes.NotFound {
		t.Errorf("UpdateInstance of a missing instance: %v", err)
	}
	m := proto.Clone(ok).(*runpb.Instance)
	m.Name = missing
	op2, err := e.instances.UpdateInstance(ctx, &runpb.UpdateInstanceRequest{Instance: m, AllowMissing: true})
	got, err := waitInstance(t, op2, err)
	if err != nil || got.Name != missing {
		t.Fatalf("allow_missing: %v, %v", got, err)
	}
	if _, err := e.instances.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: instParent, InstanceId: "missing", Instance: ok}); codeOf(err) != codes.AlreadyExists {
		t.Errorf("CreateInstance of an existing instance: %v", err)
	}
	if _, err := e.instances.DeleteInstance(ctx, &runpb.DeleteInstanceRequest{Name: got.Name, Etag: `"stale"`}); codeOf(err) != codes.Aborted {
		t.Errorf("DeleteInstance with a stale etag: %v", err)
	}
	stale := proto.Clone(got).(*runpb.Instance)
	stale.Etag = `"stale"`
	if _, err := e.instances.UpdateInstance(ctx, &runpb.UpdateInstanceRequest{Instance: stale}); codeOf(err) != codes.Aborted {
		t.Errorf("UpdateInstance with a stale etag: %v", err)
	}
	if _, err := e.instances.UpdateInstance(ctx, &runpb.UpdateInstanceRequest{Instance: got, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"containers.nope"}}}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("a mask naming no field: %v", err)
	}
	got.Labels = map[string]string{"team": "a"}
	op3, err := e.instances.UpdateInstance(ctx, &runpb.UpdateInstanceRequest{Instance: got, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
	if up, err := waitInstance(t, op3, err); err != nil || up.Labels["team"] != "a" || up.Generation != 2 {
		t.Errorf("a labels update: %v, %v", up, err)
	}
	// A generated ID.
	op4, err := e.instances.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: instParent, Instance: ok})
	if gen, err := waitInstance(t, op4, err); err != nil || !strings.HasPrefix(gen.Name, instParent+"/instances/instance-") {
		t.Errorf("an instance without an ID: %v, %v", gen, err)
	}
	var names []string
	it := e.instances.ListInstances(ctx, &runpb.ListInstancesRequest{Parent: instParent})
	for {
		in, err := it.Next()
		if err != nil {
			break
		}
		names = append(names, in.Name)
	}
	if len(names) != 2 || names[1] != missing {
		t.Errorf("ListInstances: %q", names)
	}
}

// TestInstanceQuotas checks that the instances' calls count against the
// Cloud Run Admin API's quotas: Get and List are reads; Create, Update,
// Delete, Start and Stop writes.
func TestInstanceQuotas(t *testing.T) {
	e := newInstEnv(t, gcptest.WithQuotas(gcptest.Quotas{RunReads: 2, RunWrites: 2}))
	ctx := context.Background()
	var err error
	for range 3 {
		_, err = e.instances.GetInstance(ctx, &runpb.GetInstanceRequest{Name: instParent + "/instances/none"})
	}
	var ae *apierror.APIError
	if codeOf(err) != codes.ResourceExhausted || !errors.As(err, &ae) || ae.Reason() != "RATE_LIMIT_EXCEEDED" {
		t.Errorf("the third GetInstance: %v", err)
	}
	name := instParent + "/instances/none"
	if _, err := e.instances.StopInstance(ctx, &runpb.StopInstanceRequest{Name: name}); codeOf(err) != codes.NotFound {
		t.Errorf("the first write: %v", err)
	}
	if _, err := e.instances.StartInstance(ctx, &runpb.StartInstanceRequest{Name: name}); codeOf(err) != codes.NotFound {
		t.Errorf("the second write: %v", err)
	}
	if _, err := e.instances.DeleteInstance(ctx, &runpb.DeleteInstanceRequest{Name: name}); codeOf(err) != codes.ResourceExhausted {
		t.Errorf("the third write: %v", err)
	}
}

// TestInstanceStopSignals stops an instance whose container handles
// SIGTERM, and one whose container ignores it and gets SIGKILL after the
// grace period.
func TestInstanceStopSignals(t *testing.T) {
	e := newInstEnv(t, gcptest.WithStopGracePeriod(500*time.Millisecond))
	dir := t.TempDir()
	file := dir + "/term"
	if _, err := e.create(t, "term", shInstance(`trap 'echo term >> "$0"; exit 0' TERM; echo up >> "$0"; while :; do sleep 0.02; done`, file, runpb.Instance_ALWAYS)); err != nil {
		t.Fatal(err)
	}
	lines(t, file, 1)
	e.stop(t, instParent+"/instances/term")
	if got := lines(t, file, 2); got[1] != "term" {
		t.Errorf("a container that handles SIGTERM wrote %q", got)
	}
	deaf := dir + "/deaf"
	if _, err := e.create(t, "deaf", shInstance(`trap '' TERM; echo up >> "$0"; while :; do sleep 0.02; done`, deaf, runpb.Instance_ALWAYS)); err != nil {
		t.Fatal(err)
	}
	lines(t, deaf, 1)
	start := time.Now()
	e.stop(t, instParent+"/instances/deaf")
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("a container that ignores SIGTERM stopped in %s, before the grace period", d)
	}
}

// TestInstanceProjectNumber names an instance's project by number: the
// instance is stored and answered under the project's ID.
func TestInstanceProjectNumber(t *testing.T) {
	e := newInstEnv(t, gcptest.WithProjectNumber("proj", "123"))
	ctx := context.Background()
	op, err := e.instances.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: "projects/123/locations/europe-west4", InstanceId: "num", Instance: shInstance("sleep 30", "x", runpb.Instance_NEVER)})
	in, err := waitInstance(t, op, err)
	if err != nil || in.Name != instParent+"/instances/num" {
		t.Fatalf("created %v, %v", in, err)
	}
	in.Name = "projects/123/locations/europe-west4/instances/num"
	in.Labels = map[string]string{"a": "b"}
	op2, err := e.instances.UpdateInstance(ctx, &runpb.UpdateInstanceRequest{Instance: in})
	if up, err := waitInstance(t, op2, err); err != nil || up.Name != instParent+"/instances/num" || up.Labels["a"] != "b" {
		t.Errorf("updated by number: %v, %v", up, err)
	}
}
