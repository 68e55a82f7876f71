package gcptest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/googleapis/gax-go/v2"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/gantryhq/gantry/gcptest"
)

// TestServiceValidation sends requests Cloud Run refuses and checks each
// answer's code; nothing is created.
func TestServiceValidation(t *testing.T) {
	e := newSvcEnv(t)
	ctx := context.Background()
	one := func(f func(*runpb.Service)) *runpb.Service {
		s := &runpb.Service{Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "busybox", Command: []string{"true"}}}}}
		f(s)
		return s
	}
	two := func(f func(*runpb.Service)) *runpb.Service {
		return one(func(s *runpb.Service) {
			s.Template.Containers[0].Name = "main"
			s.Template.Containers = append(s.Template.Containers, &runpb.Container{Name: "side", Image: "busybox", StartupProbe: tcpProbe(9000)})
			f(s)
		})
	}
	for _, tc := range []struct {
		name, id string
		svc      *runpb.Service
		code     codes.Code
		msg      string
	}{
		{"no service", "a", nil, codes.InvalidArgument, "service is required"},
		{"upper case ID", "Hello", one(func(*runpb.Service) {}), codes.InvalidArgument, "service_id"},
		{"ID ends with a hyphen", "hello-", one(func(*runpb.Service) {}), codes.InvalidArgument, "service_id"},
		{"ID of 50 characters", strings.Repeat("a", 50), one(func(*runpb.Service) {}), codes.InvalidArgument, "fewer than 50"},
		{"no template", "a", &runpb.Service{}, codes.InvalidArgument, "service.template is required"},
		{"no container", "a", one(func(s *runpb.Service) { s.Template.Containers = nil }), codes.InvalidArgument, "at least one container"},
		{"no image", "a", one(func(s *runpb.Service) { s.Template.Containers[0].Image = "" }), codes.InvalidArgument, "image is required"},
		{"two containers, no port", "a", two(func(*runpb.Service) {}), codes.InvalidArgument, "Revision template should contain exactly one container with an exposed port."},
		{"two containers, two ports", "a", two(func(s *runpb.Service) {
			for _, c := range s.Template.Containers {
				c.Ports = []*runpb.ContainerPort{{ContainerPort: 8080}}
			}
		}), codes.InvalidArgument, "exactly one container with an exposed port"},
		{"two ports", "a", one(func(s *runpb.Service) {
			s.Template.Containers[0].Ports = []*runpb.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 8081}}
		}), codes.InvalidArgument, "only one port"},
		{"port name", "a", one(func(s *runpb.Service) {
			s.Template.Containers[0].Ports = []*runpb.ContainerPort{{Name: "h3", ContainerPort: 8080}}
		}), codes.InvalidArgument, "http1 or h2c"},
		{"port 0", "a", one(func(s *runpb.Service) {
			s.Template.Containers[0].Ports = []*runpb.ContainerPort{{Name: "http1"}}
		}), codes.InvalidArgument, "container_port 0"},
		{"PORT set", "a", one(func(s *runpb.Service) {
			s.Template.Containers[0].Env = []*runpb.EnvVar{{Name: "PORT", Values: &runpb.EnvVar_Value{Value: "80"}}}
		}), codes.InvalidArgument, "reserved"},
		{"readiness probe", "a", one(func(s *runpb.Service) { s.Template.Containers[0].ReadinessProbe = tcpProbe(8080) }), codes.Unimplemented, "readiness_probe"},
		{"TCP liveness probe", "a", one(func(s *runpb.Service) { s.Template.Containers[0].LivenessProbe = tcpProbe(8080) }), codes.InvalidArgument, "HTTP or gRPC"},
		{"liveness period", "a", one(func(s *runpb.Service) {
			s.Template.Containers[0].LivenessProbe = &runpb.Probe{PeriodSeconds: 3601, ProbeType: &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{}}}
		}), codes.InvalidArgument, "period_seconds 3601"},
		{"startup window", "a", one(func(s *runpb.Service) {
			s.Template.Containers[0].StartupProbe = &runpb.Probe{PeriodSeconds: 100, FailureThreshold: 3, ProbeType: &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{}}}
		}), codes.InvalidArgument, "must succeed within 240"},
		{"sidecar dependency without a probe", "a", two(func(s *runpb.Service) {
			s.Template.Containers[0].Ports = []*runpb.ContainerPort{{ContainerPort: 8080}}
			s.Template.Containers[1].StartupProbe = nil
			s.Template.Containers[0].DependsOn = []string{"side"}
		}), codes.InvalidArgument, "Dependent container 'side' must have startup probe specified"},
		{"revision without the service's prefix", "a", one(func(s *runpb.Service) { s.Template.Revision = "b-1" }), codes.InvalidArgument, "prefixed by the name of the enclosing service"},
		{"timeout", "a", one(func(s *runpb.Service) { s.Template.Timeout = durationpb.New(3601 * time.Second) }), codes.InvalidArgument, "timeout"},
		{"concurrency", "a", one(func(s *runpb.Service) { s.Template.MaxInstanceRequestConcurrency = 1001 }), codes.InvalidArgument, "max_instance_request_concurrency 1001"},
		{"concurrency with a fraction of a CPU", "a", one(func(s *runpb.Service) {
			s.Template.MaxInstanceRequestConcurrency = 10
			s.Template.Containers[0].Resources = &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "0.5"}}
		}), codes.InvalidArgument, "needs at least 1 CPU"},
		{"memory below 128Mi", "a", one(func(s *runpb.Service) {
			s.Template.Containers[0].Resources = &runpb.ResourceRequirements{Limits: map[string]string{"memory": "64Mi"}}
		}), codes.InvalidArgument, "128Mi to 32Gi"},
		{"memory below 512Mi in gen2", "a", one(func(s *runpb.Service) {
			s.Template.ExecutionEnvironment = runpb.ExecutionEnvironment_EXECUTION_ENVIRONMENT_GEN2
			s.Template.Containers[0].Resources = &runpb.ResourceRequirements{Limits: map[string]string{"memory": "256Mi"}}
		}), codes.InvalidArgument, "512Mi to 32Gi"},
		{"a system label", "a", one(func(s *runpb.Service) { s.Labels = map[string]string{"run.googleapis.com/x": "y"} }), codes.InvalidArgument, "namespace"},
		{"ingress", "a", one(func(s *runpb.Service) { s.Ingress = 9 }), codes.InvalidArgument, "IngressTraffic"},
		{"a traffic split", "a", one(func(s *runpb.Service) {
			s.Traffic = []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: "a-1", Percent: 100}}
		}), codes.Unimplemented, "traffic"},
		{"an empty custom audience", "a", one(func(s *runpb.Service) { s.CustomAudiences = []string{""} }), codes.InvalidArgument, "custom_audiences[0]"},
		{"IAP", "a", one(func(s *runpb.Service) { s.IapEnabled = true }), codes.Unimplemented, "iap_enabled"},
		{"description", "a", one(func(s *runpb.Service) { s.Description = strings.Repeat("d", 513) }), codes.InvalidArgument, "description"},
	} {
		_, err := e.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: tc.id, Service: tc.svc})
		if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.code, tc.msg)
		}
	}
	if _, err := e.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: "projects/p", ServiceId: "a", Service: &runpb.Service{}}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("a bad parent: %v", err)
	}
	for _, n := range []string{"projects/p/locations/l/services/-", "projects/p/locations/l/jobs/a"} {
		if _, err := e.services.GetService(ctx, &runpb.GetServiceRequest{Name: n}); codeOf(err) != codes.InvalidArgument {
			t.Errorf("GetService(%s): %v", n, err)
		}
	}
	it := e.services.ListServices(ctx, &runpb.ListServicesRequest{Parent: parent})
	if s, err := it.Next(); err == nil {
		t.Errorf("a refused request created %s", s.Name)
	}
}

// TestServiceRequests checks validate_only, the missing and existing
// services' answers, etags, allow_missing and listing.
func TestServiceRequests(t *testing.T) {
	e := newSvcEnv(t)
	ctx := context.Background()
	ok := &runpb.Service{Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "busybox", Command: []string{"true"}}}}}
	op, err := e.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: "dry", Service: ok, ValidateOnly: true})
	if err != nil || !op.Done() {
		t.Fatalf("validate_only: %v", err)
	}
	if _, err := e.services.GetService(ctx, &runpb.GetServiceRequest{Name: parent + "/services/dry"}); codeOf(err) != codes.NotFound {
		t.Errorf("validate_only created the service: %v", err)
	}
	missing := parent + "/services/missing"
	if _, err := e.services.DeleteService(ctx, &runpb.DeleteServiceRequest{Name: missing}); codeOf(err) != codes.NotFound {
		t.Errorf("DeleteService of a missing service: %v", err)
	}
	if _, err := e.services.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: &runpb.Service{Name: missing, Template: ok.Template}}); codeOf(err) != codes.NotFound {
		t.Errorf("UpdateService of a missing service: %v", err)
	}
	up, err := e.services.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: helperService(t, "m"), AllowMissing: true})
	if err == nil {
		t.Errorf("UpdateService without a name: %v", up)
	}
	h := helperService(t, "m")
	h.Name = missing
	if _, err := waitService(t, mustUpdate(t, e, &runpb.UpdateServiceRequest{Service: h, AllowMissing: true})); err != nil {
		t.Fatalf("allow_missing: %v", err)
	}
	svc := e.get(t, "missing")
	if _, err := e.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: "missing", Service: helperService(t, "")}); codeOf(err) != codes.AlreadyExists {
		t.Errorf("CreateService of an existing service: %v", err)
	}
	if _, err := e.services.DeleteService(ctx, &runpb.DeleteServiceRequest{Name: svc.Name, Etag: `"stale"`}); codeOf(err) != codes.Aborted {
		t.Errorf("DeleteService with a stale etag: %v", err)
	}
	stale := proto.Clone(svc).(*runpb.Service)
	stale.Etag = `"stale"`
	if _, err := e.services.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: stale}); codeOf(err) != codes.Aborted {
		t.Errorf("UpdateService with a stale etag: %v", err)
	}
	if _, err := e.services.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: svc, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"template.nope"}}}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("a mask naming no field: %v", err)
	}
	var names []string
	it := e.services.ListServices(ctx, &runpb.ListServicesRequest{Parent: parent})
	for {
		s, err := it.Next()
		if err != nil {
			break
		}
		names = append(names, s.Name)
	}
	if len(names) != 1 || names[0] != svc.Name {
		t.Errorf("ListServices: %q", names)
	}
}

func mustUpdate(t *testing.T, e *svcEnv, req *runpb.UpdateServiceRequest) interface {
	Wait(context.Context, ...gax.CallOption) (*runpb.Service, error)
} {
	t.Helper()
	op, err := e.services.UpdateService(context.Background(), req)
	if err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	return op
}

// TestServiceReconciles checks what a client sees while a service is
// created and deleted, without instant operations: the operation and
// the service reconciling, then the service ready.
func TestServiceReconciles(t *testing.T) {
	e := newSvcEnvWith(t, gcptest.WithReconcileDelay(300*time.Millisecond), gcptest.WithStopGracePeriod(time.Second))
	ctx := context.Background()
	op, err := e.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: "rec", Service: helperService(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	if op.Done() {
		t.Fatal("the operation is done at once")
	}
	got := e.get(t, "rec")
	switch {
	case !got.Reconciling || got.TerminalCondition.GetState() != runpb.Condition_CONDITION_RECONCILING:
		t.Errorf("while reconciling: reconciling %v, terminal condition %v", got.Reconciling, got.TerminalCondition)
	case got.Uri != "" || got.LatestReadyRevision != "" || got.LatestCreatedRevision == "" || got.ObservedGeneration != 0:
		t.Errorf("while reconciling: uri %q, ready %q, created %q, observed %d", got.Uri, got.LatestReadyRevision, got.LatestCreatedRevision, got.ObservedGeneration)
	}
	if c := conditionOf(got, "RoutesReady"); c.GetState() != runpb.Condition_CONDITION_RECONCILING {
		t.Errorf("RoutesReady while reconciling: %v", c)
	}
	if md, err := op.Metadata(); err != nil || md.GetName() != got.Name {
		t.Errorf("operation metadata %v, %v", md, err)
	}
	var svc *runpb.Service
	for !op.Done() {
		if svc, err = op.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if svc.GetUri() == "" || svc.Reconciling || svc.TerminalCondition.GetState() != runpb.Condition_CONDITION_SUCCEEDED {
		t.Errorf("once done: %v", svc)
	}
	del, err := e.services.DeleteService(ctx, &runpb.DeleteServiceRequest{Name: svc.Name})
	if err != nil {
		t.Fatal(err)
	}
	for !del.Done() {
		if _, err := del.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServiceQuotas checks that the services' calls count against the
// Cloud Run Admin API's read quota.
func TestServiceQuotas(t *testing.T) {
	e := newSvcEnv(t, gcptest.WithQuotas(gcptest.Quotas{RunReads: 2}))
	ctx := context.Background()
	var err error
	for range 3 {
		_, err = e.services.GetService(ctx, &runpb.GetServiceRequest{Name: parent + "/services/none"})
	}
	var ae *apierror.APIError
	if codeOf(err) != codes.ResourceExhausted || !errors.As(err, &ae) || ae.Reason() != "RATE_LIMIT_EXCEEDED" {
		t.Errorf("the third GetService: %v", err)
	}
}

// TestServiceProjectNumber names a service's project by number: the
// service is stored and answered under the project's ID.
func TestServiceProjectNumber(t *testing.T) {
	e := newSvcEnv(t, gcptest.WithProjectNumber("proj", "123"))
	ctx := context.Background()
	op, err := e.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: "projects/123/locations/us-central1", ServiceId: "num", Service: helperService(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := op.Wait(ctx)
	if err != nil || svc.Name != parent+"/services/num" {
		t.Fatalf("created %v, %v", svc, err)
	}
	svc.Name = "projects/123/locations/us-central1/services/num"
	svc.Labels = map[string]string{"a": "b"}
	up, err := e.update(t, svc)
	if err != nil || up.Name != parent+"/services/num" || up.Labels["a"] != "b" {
		t.Errorf("updated by number: %v, %v", up, err)
	}
}
