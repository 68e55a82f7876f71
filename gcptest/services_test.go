package gcptest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/coder/websocket"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/gantryhq/gantry/gcptest"
)

// svcEnv is an emulator with a Services client beside env's clients.
type svcEnv struct {
	*env
	services *run.ServicesClient
}

// newSvcEnv starts a relaxed Server with instant operations; opts may
// turn strict rules back on.
func newSvcEnv(t *testing.T, opts ...gcptest.Option) *svcEnv {
	t.Helper()
	return newSvcEnvWith(t, append([]gcptest.Option{gcptest.WithInstantOperations()}, opts...)...)
}

// newSvcEnvWith is newSvcEnv without instant operations.
func newSvcEnvWith(t *testing.T, opts ...gcptest.Option) *svcEnv {
	t.Helper()
	e := newEnv(t, append([]gcptest.Option{gcptest.WithStopGracePeriod(2 * time.Second)}, opts...)...)
	return &svcEnv{env: e, services: newClient(t, e, run.NewServicesClient)}
}

// helperService is a service whose one container is this test binary
// serving HTTP (serveHelper), with MESSAGE=msg.
func helperService(t *testing.T, msg string) *runpb.Service {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &runpb.Service{Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{
		Image:   "busybox",
		Command: []string{self},
		Env: []*runpb.EnvVar{
			{Name: serviceHelperEnv, Values: &runpb.EnvVar_Value{Value: "1"}},
			{Name: "MESSAGE", Values: &runpb.EnvVar_Value{Value: msg}},
		},
	}}}}
}

func (e *svcEnv) create(t *testing.T, id string, svc *runpb.Service) (*runpb.Service, error) {
	t.Helper()
	ctx := context.Background()
	op, err := e.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: id, Service: svc})
	if err != nil {
		t.Fatalf("CreateService(%s): %v", id, err)
	}
	return waitService(t, op)
}

func (e *svcEnv) update(t *testing.T, svc *runpb.Service, mask ...string) (*runpb.Service, error) {
	t.Helper()
	req := &runpb.UpdateServiceRequest{Service: svc}
	if len(mask) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: mask}
	}
	op, err := e.services.UpdateService(context.Background(), req)
	if err != nil {
		t.Fatalf("UpdateService(%s): %v", svc.Name, err)
	}
	return waitService(t, op)
}

// waitService waits for a Create or Update operation.
func waitService(t *testing.T, op interface {
	Wait(context.Context, ...gax.CallOption) (*runpb.Service, error)
}) (*runpb.Service, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return op.Wait(ctx)
}

func (e *svcEnv) get(t *testing.T, id string) *runpb.Service {
	t.Helper()
	svc, err := e.services.GetService(context.Background(), &runpb.GetServiceRequest{Name: parent + "/services/" + id})
	if err != nil {
		t.Fatalf("GetService(%s): %v", id, err)
	}
	return svc
}

// call GETs url + path with token as its bearer token ("" for none) and
// returns the status and body.
func call(t *testing.T, url, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", url, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func lastSegment(s string) string { return s[strings.LastIndexByte(s, '/')+1:] }

func processGone(pid int) bool {
	return pid > 0 && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !processGone(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs", pid)
		}
	}
}

// TestServiceServesThroughItsURL creates a service and calls it through
// its URL: Cloud Run's output fields once it is ready, the environment
// its container gets, and the invoker check's answers.
func TestServiceServesThroughItsURL(t *testing.T) {
	e := newSvcEnv(t)
	svc, err := e.create(t, "hello", helperService(t, "hi"))
	if err != nil {
		t.Fatalf("CreateService operation: %v", err)
	}
	rev := lastSegment(svc.LatestReadyRevision)
	switch {
	case svc.Uri == "" || !strings.HasPrefix(svc.Uri, "http://127.0.0.1:") || len(svc.Urls) != 1 || svc.Urls[0] != svc.Uri:
		t.Errorf("uri %q, urls %q", svc.Uri, svc.Urls)
	case svc.LatestReadyRevision != parent+"/services/hello/revisions/"+rev || svc.LatestCreatedRevision != svc.LatestReadyRevision:
		t.Errorf("latest ready revision %q, latest created %q", svc.LatestReadyRevision, svc.LatestCreatedRevision)
	case !strings.HasPrefix(rev, "hello-00001-") || len(rev) != len("hello-00001-abc"):
		t.Errorf("revision %q, want hello-00001-xxx", rev)
	case svc.Reconciling || svc.ObservedGeneration != 1 || svc.Generation != 1:
		t.Errorf("reconciling %v, generation %d, observed %d", svc.Reconciling, svc.Generation, svc.ObservedGeneration)
	case svc.Ingress != runpb.IngressTraffic_INGRESS_TRAFFIC_ALL:
		t.Errorf("ingress %v", svc.Ingress)
	}
	for _, typ := range []string{"Ready", "RoutesReady", "ConfigurationsReady"} {
		if c := conditionOf(svc, typ); c.GetState() != runpb.Condition_CONDITION_SUCCEEDED {
			t.Errorf("condition %s: %v", typ, c)
		}
	}
	if ts := svc.TrafficStatuses; len(ts) != 1 || ts[0].Revision != rev || ts[0].Percent != 100 {
		t.Errorf("traffic statuses %v", ts)
	}
	c := svc.Template.Containers[0]
	if p := c.GetPorts(); len(p) != 1 || p[0].ContainerPort != 8080 || p[0].Name != "http1" {
		t.Errorf("ports %v, want the default 8080 named http1", p)
	}
	if p := c.GetStartupProbe(); p.GetTcpSocket().GetPort() != 8080 || p.GetPeriodSeconds() != 240 || p.GetTimeoutSeconds() != 240 || p.GetFailureThreshold() != 1 {
		t.Errorf("startup probe %v, want Cloud Run's default TCP probe", p)
	}
	if got := svc.Template.GetTimeout().AsDuration(); got != 300*time.Second || svc.Template.MaxInstanceRequestConcurrency != 80 {
		t.Errorf("timeout %s, concurrency %d", got, svc.Template.MaxInstanceRequestConcurrency)
	}

	tok := e.srv.IDToken(svc.Uri)
	if code, body := call(t, svc.Uri, "/", tok); code != http.StatusOK || body != "hello "+rev+" hi" {
		t.Errorf("GET / with a token: %d %q", code, body)
	}
	code, body := call(t, svc.Uri, "/env", tok)
	var env map[string]string
	if err := json.Unmarshal([]byte(body), &env); code != http.StatusOK || err != nil {
		t.Fatalf("GET /env: %d %q", code, body)
	}
	if env["PORT"] == "" || env["PORT"] == "8080" || env["K_SERVICE"] != "hello" || env["K_REVISION"] != rev || env["K_CONFIGURATION"] != "hello" || env["GCE_METADATA_HOST"] != e.srv.MetadataHost() {
		t.Errorf("container environment %v", env)
	}

	other, err := gcptest.NewServer(gcptest.Relaxed())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, tc := range []struct {
		name, token string
		code        int
	}{
		{"no token", "", http.StatusForbidden},
		{"the URL with a slash", e.srv.IDToken(svc.Uri + "/"), http.StatusOK},
		{"another audience", e.srv.IDToken("http://127.0.0.1:1"), http.StatusUnauthorized},
		{"a path of the URL", e.srv.IDToken(svc.Uri + "/env"), http.StatusUnauthorized},
		{"another server's token", other.IDToken(svc.Uri), http.StatusUnauthorized},
		{"not a token", "ya29.not-an-id-token", http.StatusUnauthorized},
	} {
		code, body := call(t, svc.Uri, "/", tc.token)
		if code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.code)
		}
	}
	if _, body := call(t, svc.Uri, "/", ""); !strings.Contains(body, "Your client does not have permission to get URL <code>/</code> from this server.") {
		t.Errorf("403 page %q", body)
	}
	tok2, err := e.srv.IDTokenSource(svc.Uri).Token()
	if err != nil || tok2.Expiry.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("IDTokenSource: %v, %v", tok2, err)
	}
	if code, _ := call(t, svc.Uri, "/", tok2.AccessToken); code != http.StatusOK {
		t.Errorf("a token from IDTokenSource: %d", code)
	}
}

// TestServiceWebSocket opens a WebSocket through the service's URL.
func TestServiceWebSocket(t *testing.T) {
	e := newSvcEnv(t)
	svc, err := e.create(t, "ws", helperService(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(svc.Uri, "http") + "/ws"
	if _, _, err := websocket.Dial(ctx, wsURL, nil); err == nil {
		t.Error("a WebSocket without a token was accepted")
	}
	h := http.Header{"Authorization": {"Bearer " + e.srv.IDToken(svc.Uri)}}
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("Dial %s: %v", wsURL, err)
	}
	defer c.CloseNow()
	for _, msg := range []string{"one", "two"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo: "+msg {
			t.Fatalf("read %q, %v", got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// TestServiceUpdateReplacesInstance updates a service's template: a new
// revision and a new instance serve it, and the old instance is gone. A
// change outside the template makes no new revision.
func TestServiceUpdateReplacesInstance(t *testing.T) {
	e := newSvcEnv(t, gcptest.WithStopGracePeriod(time.Second))
	svc, err := e.create(t, "upd", helperService(t, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	tok := e.srv.IDToken(svc.Uri)
	_, p := call(t, svc.Uri, "/pid", tok)
	pid1, _ := strconv.Atoi(p)

	next := helperService(t, "v2")
	next.Name = svc.Name
	up, err := e.update(t, next)
	if err != nil {
		t.Fatalf("UpdateService operation: %v", err)
	}
	rev := lastSegment(up.LatestReadyRevision)
	if !strings.HasPrefix(rev, "upd-00002-") || up.LatestCreatedRevision != up.LatestReadyRevision || up.Generation != 2 || up.ObservedGeneration != 2 || up.Uri != svc.Uri {
		t.Errorf("after the update: revision %q, created %q, generation %d/%d, uri %q", rev, up.LatestCreatedRevision, up.Generation, up.ObservedGeneration, up.Uri)
	}
	if code, body := call(t, svc.Uri, "/", tok); code != http.StatusOK || body != "upd "+rev+" v2" {
		t.Errorf("GET / after the update: %d %q", code, body)
	}
	_, p = call(t, svc.Uri, "/pid", tok)
	if pid2, _ := strconv.Atoi(p); pid2 == pid1 || pid2 == 0 {
		t.Errorf("the same instance (%d, %d) serves the new revision", pid1, pid2)
	}
	if !processGone(pid1) {
		t.Errorf("the old instance %d still runs", pid1)
	}

	up.Labels = map[string]string{"team": "a"}
	lab, err := e.update(t, up, "labels")
	if err != nil {
		t.Fatal(err)
	}
	if lab.LatestCreatedRevision != up.LatestCreatedRevision || lab.Generation != 3 || lab.Labels["team"] != "a" {
		t.Errorf("a labels update: created %q (was %q), generation %d, labels %v", lab.LatestCreatedRevision, up.LatestCreatedRevision, lab.Generation, lab.Labels)
	}

	// A revision name used before is refused.
	again := proto.Clone(lab).(*runpb.Service)
	again.Template.Revision = rev
	again.Template.Containers[0].Args = []string{"x"}
	if _, err := e.services.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: again}); codeOf(err) != codes.AlreadyExists {
		t.Errorf("reusing revision %s: %v, want AlreadyExists", rev, err)
	}
}

// TestServiceFailsToStart deploys revisions whose container exits: the
// operation fails with Cloud Run's message, and a service that served
// before keeps serving its old revision.
func TestServiceFailsToStart(t *testing.T) {
	e := newSvcEnv(t)
	bad := &runpb.Service{Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{
		Image: "busybox", Command: []string{"sh", "-c", "echo starting; exit 3"},
	}}}}
	svc, err := e.create(t, "bad", bad)
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "is not ready and cannot serve traffic") {
		t.Fatalf("CreateService operation: %v, %v", svc, err)
	}
	got := e.get(t, "bad")
	if c := got.TerminalCondition; c.GetState() != runpb.Condition_CONDITION_FAILED || !strings.HasPrefix(c.GetMessage(), "Revision '"+lastSegment(got.LatestCreatedRevision)+"' is not ready") {
		t.Errorf("terminal condition %v", c)
	}
	if got.Uri != "" || got.LatestReadyRevision != "" || got.Reconciling {
		t.Errorf("a service that never served: uri %q, latest ready %q, reconciling %v", got.Uri, got.LatestReadyRevision, got.Reconciling)
	}
	var system []string
	for _, le := range e.listLogs(t, `resource.type="cloud_run_revision" AND resource.labels.service_name="bad"`) {
		if strings.HasSuffix(le.LogName, "varlog%2Fsystem") {
			system = append(system, le.GetTextPayload())
		}
	}
	if len(system) != 1 || system[0] != "Container called exit(3)." {
		t.Errorf("system log %q", system)
	}

	good := helperService(t, "ok")
	good.Name = got.Name
	if _, err := e.update(t, good); err != nil {
		t.Fatalf("a good revision: %v", err)
	}
	bad.Name = got.Name
	_, err = e.update(t, bad)
	if codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("a bad revision after a good one: %v", err)
	}
	after := e.get(t, "bad")
	if after.LatestReadyRevision == after.LatestCreatedRevision || after.ObservedGeneration != 2 || after.Uri == "" {
		t.Errorf("after a failed update: ready %q, created %q, observed %d", after.LatestReadyRevision, after.LatestCreatedRevision, after.ObservedGeneration)
	}
	if code, body := call(t, after.Uri, "/", e.srv.IDToken(after.Uri)); code != http.StatusOK || !strings.HasSuffix(body, " ok") {
		t.Errorf("the old revision after a failed update: %d %q", code, body)
	}
}

// TestServiceDelete deletes a service: its instance stops and its URL
// refuses connections.
func TestServiceDelete(t *testing.T) {
	e := newSvcEnv(t)
	svc, err := e.create(t, "gone", helperService(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, p := call(t, svc.Uri, "/pid", e.srv.IDToken(svc.Uri))
	pid, _ := strconv.Atoi(p)
	op, err := e.services.DeleteService(context.Background(), &runpb.DeleteServiceRequest{Name: svc.Name})
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := op.Wait(context.Background())
	if err != nil || deleted.GetDeleteTime() == nil {
		t.Fatalf("DeleteService operation: %v, %v", deleted, err)
	}
	if !processGone(pid) {
		t.Errorf("the instance %d still runs", pid)
	}
	if _, err := http.Get(svc.Uri); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET after the delete: %v, want connection refused", err)
	}
	if _, err := e.services.GetService(context.Background(), &runpb.GetServiceRequest{Name: svc.Name}); codeOf(err) != codes.NotFound {
		t.Errorf("GetService after the delete: %v", err)
	}
}

// TestServiceLogs checks that an instance's output is in Cloud Logging as
// Cloud Run writes a revision's.
func TestServiceLogs(t *testing.T) {
	e := newSvcEnv(t)
	svc, err := e.create(t, "logs", helperService(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	call(t, svc.Uri, "/pid", e.srv.IDToken(svc.Uri))
	rev := lastSegment(svc.LatestReadyRevision)
	lines := e.stdoutLines(t, `resource.type="cloud_run_revision" AND resource.labels.service_name="logs"`, 2, func(le *loggingpb.LogEntry) bool {
		l := le.Resource.Labels
		return l["revision_name"] == rev && l["location"] == "us-central1" && l["project_id"] == "proj" && l["configuration_name"] == "logs" && le.Labels["instanceId"] != ""
	})
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "listening on ") || lines[1] != "GET /pid" {
		t.Errorf("logged %q", lines)
	}
}

// TestMetadataServer asks the metadata server for ID tokens, from the
// test and from inside a service's container, and presents them to the
// service; a job's container gets GCE_METADATA_HOST too.
func TestMetadataServer(t *testing.T) {
	e := newSvcEnv(t)
	base := "http://" + e.srv.MetadataHost() + "/computeMetadata/v1/instance/service-accounts/default/"
	get := func(path string, flavor bool) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if flavor {
			req.Header.Set("Metadata-Flavor", "Google")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Metadata-Flavor") != "Google" {
			t.Errorf("%s: no Metadata-Flavor in the answer", path)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	svc, err := e.create(t, "meta", helperService(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get("identity?audience="+svc.Uri, false); code != http.StatusForbidden {
		t.Errorf("without Metadata-Flavor: %d", code)
	}
	if code, _ := get("identity", true); code != http.StatusBadRequest {
		t.Errorf("without an audience: %d", code)
	}
	if code, email := get("email", true); code != http.StatusOK || email != gcptest.DefaultServiceAccount {
		t.Errorf("email: %d %q", code, email)
	}
	code, tok := get("identity?format=full&audience="+svc.Uri, true)
	if code != http.StatusOK || strings.Count(tok, ".") != 2 {
		t.Fatalf("identity: %d %q", code, tok)
	}
	if code, _ := call(t, svc.Uri, "/", tok); code != http.StatusOK {
		t.Errorf("the metadata server's token at the service: %d", code)
	}
	// From inside the container, through GCE_METADATA_HOST.
	code, inner := call(t, svc.Uri, "/token?audience="+svc.Uri, tok)
	if code != http.StatusOK {
		t.Fatalf("a token from inside: %d %q", code, inner)
	}
	if code, _ := call(t, svc.Uri, "/", inner); code != http.StatusOK {
		t.Errorf("the container's token at the service: %d", code)
	}

	e.createJob(t, "meta-job", shJob(`echo "$GCE_METADATA_HOST"`))
	if _, _, err := e.runToEnd(t, "meta-job", nil); err != nil {
		t.Fatal(err)
	}
	logs := e.listLogs(t, `resource.labels.job_name="meta-job"`)
	if len(logs) != 1 || logs[0].GetTextPayload() != e.srv.MetadataHost() {
		t.Errorf("the job's GCE_METADATA_HOST: %v", logs)
	}
}

// TestServiceAccessSettings checks invoker_iam_disabled, custom
// audiences and ingress.
func TestServiceAccessSettings(t *testing.T) {
	e := newSvcEnv(t)
	open := helperService(t, "")
	open.InvokerIamDisabled = true
	svc, err := e.create(t, "open", open)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, svc.Uri, "/", ""); code != http.StatusOK {
		t.Errorf("invoker_iam_disabled without a token: %d", code)
	}
	svc.InvokerIamDisabled = false
	svc.CustomAudiences = []string{"my-audience"}
	if _, err := e.update(t, svc, "invokerIamDisabled", "custom_audiences"); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, svc.Uri, "/", ""); code != http.StatusForbidden {
		t.Errorf("the invoker check back on, without a token: %d", code)
	}
	if code, _ := call(t, svc.Uri, "/", e.srv.IDToken("my-audience")); code != http.StatusOK {
		t.Errorf("a custom audience: %d", code)
	}
	internal := helperService(t, "")
	internal.Ingress = runpb.IngressTraffic_INGRESS_TRAFFIC_INTERNAL_ONLY
	svc, err = e.create(t, "internal", internal)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, svc.Uri, "/", e.srv.IDToken(svc.Uri)); code != http.StatusNotFound {
		t.Errorf("an internal service from outside: %d", code)
	}
}

// TestServiceRestartsItsInstance checks that the request after an
// instance ended starts another, and that a request past the timeout is
// cut with 504.
func TestServiceRestartsItsInstance(t *testing.T) {
	e := newSvcEnv(t)
	s := helperService(t, "")
	s.InvokerIamDisabled = true
	s.Template.Timeout = durationpb.New(time.Second)
	svc, err := e.create(t, "crash", s)
	if err != nil {
		t.Fatal(err)
	}
	_, p := call(t, svc.Uri, "/pid", "")
	pid1, _ := strconv.Atoi(p)
	if code, _ := call(t, svc.Uri, "/exit", ""); code != http.StatusOK {
		t.Fatalf("/exit: %d", code)
	}
	waitGone(t, pid1)
	code, p := call(t, svc.Uri, "/pid", "")
	if pid2, _ := strconv.Atoi(p); code != http.StatusOK || pid2 == pid1 {
		t.Errorf("after the instance exited: %d %q", code, p)
	}
	if code, body := call(t, svc.Uri, "/sleep?d=3s", ""); code != http.StatusGatewayTimeout {
		t.Errorf("a request past the timeout: %d %q", code, body)
	}
}

// TestServiceLivenessProbe restarts an instance whose liveness probe
// fails.
func TestServiceLivenessProbe(t *testing.T) {
	e := newSvcEnv(t)
	s := helperService(t, "")
	s.InvokerIamDisabled = true
	s.Template.Containers[0].LivenessProbe = &runpb.Probe{
		InitialDelaySeconds: 1, PeriodSeconds: 1, FailureThreshold: 1,
		ProbeType: &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{Path: "/status?code=500"}},
	}
	svc, err := e.create(t, "live", s)
	if err != nil {
		t.Fatal(err)
	}
	code, p := call(t, svc.Uri, "/pid", "")
	pid, _ := strconv.Atoi(p)
	if code != http.StatusOK || pid == 0 {
		t.Fatalf("/pid: %d %q", code, p)
	}
	waitGone(t, pid)
	var system []string
	for _, le := range e.listLogs(t, `resource.labels.service_name="live" AND logName="projects/proj/logs/run.googleapis.com%2Fvarlog%2Fsystem"`) {
		system = append(system, le.GetTextPayload())
	}
	if len(system) == 0 || !strings.HasPrefix(system[0], `LIVENESS HTTP probe failed 1 time consecutively for container "live" on path "/status?code=500".`) {
		t.Errorf("system log %q", system)
	}
}

// TestServiceH2C reaches a container whose port is named h2c over
// HTTP/2 without TLS, and one named http1 over HTTP/1.1.
func TestServiceH2C(t *testing.T) {
	e := newSvcEnv(t)
	for _, tc := range []struct{ port, proto string }{{"h2c", "HTTP/2.0"}, {"http1", "HTTP/1.1"}} {
		s := helperService(t, "")
		s.InvokerIamDisabled = true
		s.Template.Containers[0].Ports = []*runpb.ContainerPort{{Name: tc.port, ContainerPort: 8080}}
		svc, err := e.create(t, "proto-"+tc.port, s)
		if err != nil {
			t.Fatal(err)
		}
		if code, got := call(t, svc.Uri, "/proto", ""); code != http.StatusOK || got != tc.proto {
			t.Errorf("port named %s: %d %q, want %s", tc.port, code, got, tc.proto)
		}
	}
}

// TestServiceSidecarPortAcrossUpdate updates a service whose sidecar's
// startup probe uses a fixed port: the new instance cannot run beside
// the old one on this host, so the old one stops first and the update
// still completes.
func TestServiceSidecarPortAcrossUpdate(t *testing.T) {
	e := newSvcEnv(t, gcptest.WithStopGracePeriod(time.Second))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort()
	withSidecar := func(msg string) *runpb.Service {
		s := helperService(t, msg)
		s.InvokerIamDisabled = true
		main := s.Template.Containers[0]
		main.Name = "main"
		main.Ports = []*runpb.ContainerPort{{ContainerPort: 8080}}
		main.DependsOn = []string{"side"}
		s.Template.Containers = append(s.Template.Containers, &runpb.Container{
			Name:         "side",
			Image:        "busybox",
			Command:      []string{self},
			Args:         []string{"sidecar", strconv.Itoa(int(port)), t.TempDir(), "0s"},
			Env:          []*runpb.EnvVar{{Name: "GCPTEST_TEST_HELPER", Values: &runpb.EnvVar_Value{Value: "1"}}},
			StartupProbe: tcpProbe(port),
		})
		return s
	}
	svc, err := e.create(t, "side", withSidecar("v1"))
	if err != nil {
		t.Fatal(err)
	}
	next := withSidecar("v2")
	next.Name = svc.Name
	up, err := e.update(t, next)
	if err != nil {
		t.Fatalf("UpdateService operation: %v", err)
	}
	if code, body := call(t, up.Uri, "/", ""); code != http.StatusOK || !strings.HasSuffix(body, " v2") {
		t.Errorf("after the update: %d %q", code, body)
	}
}
