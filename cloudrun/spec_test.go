package cloudrun

import (
	"errors"
	"github.com/gantryhq/gantry/internal/naming"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestJobMapping checks the Spec-to-job mapping field by field.
func TestJobMapping(t *testing.T) {
	r := &Runtime{cfg: Config{Session: "s1", ServiceAccount: "sa@p.iam.gserviceaccount.com", Labels: map[string]string{"team": "infra"}}}
	spec := gantry.Spec{
		Name:       "mapped",
		Image:      "us-docker.pkg.dev/p/r/img:1",
		Entrypoint: []string{"/bin/app"},
		Cmd:        []string{"--flag", "x"},
		Env:        []string{"A=1", "B=x=y"},
		WorkingDir: "/work",
		Labels:     map[string]string{"k": "V"},
		Resources:  gantry.Resources{CPU: 0.5, MemoryBytes: 600 << 20},
		Timeout:    1500 * time.Millisecond,
		StopSignal: "TERM",
		Mounts: []gantry.Mount{
			{Type: gantry.MountTmpfs, Target: "/scratch", SizeBytes: 1},
			{Type: gantry.MountGCS, Source: "bucket", Target: "/gcs", ReadOnly: true},
			{Type: gantry.MountNFS, Source: "10.0.0.2:/export", Target: "/nfs"},
		},
		Secrets: []gantry.Secret{
			{Name: "api-key", Env: "API_KEY"},
			{Name: "projects/o/secrets/cert", Version: "3", Path: "/certs/tls.pem"},
		},
	}
	rec := meta.Record{ID: naming.NewID("mapped"), Name: "mapped", Created: time.Unix(0, 0).UTC(), Spec: spec}
	got, err := r.jobFor(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	task := &runpb.TaskTemplate{
		Containers: []*runpb.Container{{
			Image:      spec.Image,
			Command:    []string{"/bin/app"},
			Args:       []string{"--flag", "x"},
			WorkingDir: "/work",
			Env: []*runpb.EnvVar{
				{Name: "A", Values: &runpb.EnvVar_Value{Value: "1"}},
				{Name: "B", Values: &runpb.EnvVar_Value{Value: "x=y"}},
				{Name: "API_KEY", Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{SecretKeyRef: &runpb.SecretKeySelector{Secret: "api-key", Version: "latest"}}}},
			},
			Resources: &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "500m", "memory": "600Mi"}},
			VolumeMounts: []*runpb.VolumeMount{
				{Name: "v0", MountPath: "/scratch"}, {Name: "v1", MountPath: "/gcs"}, {Name: "v2", MountPath: "/nfs"}, {Name: "v3", MountPath: "/certs"},
			},
		}},
		Volumes: []*runpb.Volume{
			{Name: "v0", VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{Medium: runpb.EmptyDirVolumeSource_MEMORY, SizeLimit: "1Mi"}}},
			{Name: "v1", VolumeType: &runpb.Volume_Gcs{Gcs: &runpb.GCSVolumeSource{Bucket: "bucket", ReadOnly: true}}},
			{Name: "v2", VolumeType: &runpb.Volume_Nfs{Nfs: &runpb.NFSVolumeSource{Server: "10.0.0.2", Path: "/export"}}},
			{Name: "v3", VolumeType: &runpb.Volume_Secret{Secret: &runpb.SecretVolumeSource{Secret: "projects/o/secrets/cert", Items: []*runpb.VersionToPath{{Path: "tls.pem", Version: "3"}}}}},
		},
		Retries:        &runpb.TaskTemplate_MaxRetries{MaxRetries: 0},
		Timeout:        durationpb.New(2 * time.Second),
		ServiceAccount: "sa@p.iam.gserviceaccount.com",
	}
	if diff := cmp.Diff(task, got.GetTemplate().GetTemplate(), protocmp.Transform()); diff != "" {
		t.Errorf("task template (-want +got):\n%s", diff)
	}
	if n, p := got.GetTemplate().GetTaskCount(), got.GetTemplate().GetParallelism(); n != 1 || p != 1 {
		t.Errorf("task count %d parallelism %d, want 1 and 1", n, p)
	}
	// Executions carry the job's labels, the user's included: billing
	// and Cloud Logging see the template's.
	if diff := cmp.Diff(got.GetLabels(), got.GetTemplate().GetLabels()); diff != "" {
		t.Errorf("execution labels (-job +template):\n%s", diff)
	}
	back, err := meta.Decode(got.GetLabels(), got.GetAnnotations())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, back); diff != "" {
		t.Errorf("record on the job (-want +got):\n%s", diff)
	}
}

func TestGPUAndTimeoutDefaults(t *testing.T) {
	r := &Runtime{cfg: Config{Session: "s"}}
	rec := meta.Record{ID: strings.Repeat("b", 64), Name: "g", Spec: gantry.Spec{Image: "i", Resources: gantry.Resources{GPUs: 1}}}
	got, err := r.jobFor(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	task := got.GetTemplate().GetTemplate()
	if diff := cmp.Diff(map[string]string{"nvidia.com/gpu": "1", "cpu": "4", "memory": "16384Mi"}, task.GetContainers()[0].GetResources().GetLimits()); diff != "" {
		t.Errorf("GPU limits (-want +got):\n%s", diff)
	}
	if a := task.GetNodeSelector().GetAccelerator(); a != DefaultGPUType {
		t.Errorf("accelerator %q, want %q", a, DefaultGPUType)
	}
	if d := task.GetTimeout().AsDuration(); d != MaxGPUTimeout {
		t.Errorf("GPU task timeout %v, want %v", d, MaxGPUTimeout)
	}
	rec.Spec.Resources = gantry.Resources{}
	got, _ = r.jobFor(rec, nil)
	if d := got.GetTemplate().GetTemplate().GetTimeout().AsDuration(); d != MaxTimeout {
		t.Errorf("task timeout of a spec without one: %v, want %v", d, MaxTimeout)
	}
}

func TestIDsAndJobNames(t *testing.T) {
	a, b := naming.NewID("web"), naming.NewID("web")
	if a == b || !naming.IsFullID(a) || naming.ResourceForID(jobPrefix, a) != jobIDForName("web") || naming.ResourceForID(jobPrefix, b) != jobIDForName("web") {
		t.Errorf("IDs %s and %s: both must be full IDs pointing to %s", a, b, jobIDForName("web"))
	}
	if jobIDForName("web") == jobIDForName("Web") {
		t.Error("names differing in case share a job")
	}
	for _, name := range []string{"web", "Web_1.x", strings.Repeat("n", 200), naming.NewName()} {
		if id := jobIDForName(name); len(id) > 63 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || id[0] < 'a' || id[0] > 'z' {
			t.Errorf("job ID %q for %q breaks Cloud Run's job ID rules", id, name)
		}
	}
	if !gantry.ValidName(naming.NewName()) {
		t.Errorf("generated name %q is not a valid Docker name", naming.NewName())
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Region: "r"},
		{Project: "p"},
		{Project: "p/q", Region: "r"},
		{Project: "p", Region: "r", Session: "Bad Session"},
		{Project: "p", Region: "r", Labels: map[string]string{"Team": "x"}},
		{Project: "p", Region: "r", Labels: map[string]string{"managed-by": "me"}},
		{Project: "p", Region: "r", Labels: map[string]string{"gantry-x": "y"}},
		{Project: "p", Region: "r", PollInterval: -1},
	} {
		if _, err := New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "invalid argument") {
			t.Errorf("New(%+v) = %v, want an invalid-argument error before connecting", cfg, err)
		}
	}
}

// TestCPUAndMemoryPairing: an unset CPU or memory takes the least that goes
// with the other, a pair Cloud Run refuses is refused before any call, and
// the emulator, which applies Cloud Run's own table, accepts every job made.
func TestCPUAndMemoryPairing(t *testing.T) {
	srv := newServer(t, gcptest.WithInstantOperations())
	rt := newRuntime(t, srv, Config{})
	ctx := testCtx(t)
	const gib = 1 << 30
	for _, tc := range []struct {
		res  gantry.Resources
		want map[string]string // nil: refused
	}{
		{gantry.Resources{}, nil},
		{gantry.Resources{MemoryBytes: 8 * gib}, map[string]string{"cpu": "2", "memory": "8192Mi"}},
		{gantry.Resources{MemoryBytes: 20 * gib}, map[string]string{"cpu": "6", "memory": "20480Mi"}},
		{gantry.Resources{MemoryBytes: 1 * gib}, map[string]string{"memory": "1024Mi"}},
		{gantry.Resources{CPU: 4}, map[string]string{"cpu": "4", "memory": "2048Mi"}},
		{gantry.Resources{CPU: 8}, map[string]string{"cpu": "8", "memory": "4096Mi"}},
		{gantry.Resources{CPU: 0.25}, map[string]string{"cpu": "250m"}},
		{gantry.Resources{CPU: 0.5, MemoryBytes: gib}, map[string]string{"cpu": "500m", "memory": "1024Mi"}},
		{gantry.Resources{CPU: 0.25, MemoryBytes: gib}, nil},
		{gantry.Resources{CPU: 1, MemoryBytes: 8 * gib}, nil},
		{gantry.Resources{CPU: 4, MemoryBytes: gib}, nil},
	} {
		spec := sh("exit 0")
		spec.Resources = tc.res
		srv.ResetCalls()
		c, err := rt.Create(ctx, spec)
		if tc.want == nil && tc.res != (gantry.Resources{}) {
			if !errors.Is(err, gantry.ErrInvalidArgument) || len(srv.CallCounts()) != 0 {
				t.Errorf("%+v: Create = %v with calls %v, want ErrInvalidArgument and no call", tc.res, err, srv.CallCounts())
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: Create = %v", tc.res, err)
			continue
		}
		rt.Remove(ctx, c.ID, gantry.RemoveOptions{})
		want := tc.want
		if want == nil {
			want = map[string]string{}
		}
		job, err := rt.jobFor(meta.Record{ID: c.ID, Name: c.Name, Spec: spec}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := job.GetTemplate().GetTemplate().GetContainers()[0].GetResources().GetLimits()
		if got == nil {
			got = map[string]string{}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%+v: limits (-want +got):\n%s", tc.res, diff)
		}
	}
}
