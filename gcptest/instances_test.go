package gcptest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/gantryhq/gantry/gcptest"
)

// instParent is a region that has Cloud Run instances.
const instParent = "projects/proj/locations/europe-west4"

// instEnv is an emulator with an Instances client beside env's clients.
type instEnv struct {
	*env
	instances *run.InstancesClient
}

// newInstEnv starts a relaxed Server with instant operations, a grace
// period of 2 s and a restart backoff of 20 ms to 100 ms; opts may
// change them.
func newInstEnv(t *testing.T, opts ...gcptest.Option) *instEnv {
	t.Helper()
	e := newEnv(t, append([]gcptest.Option{
		gcptest.WithInstantOperations(),
		gcptest.WithStopGracePeriod(2 * time.Second),
		gcptest.WithInstanceRestartBackoff(20*time.Millisecond, 100*time.Millisecond),
	}, opts...)...)
	return &instEnv{env: e, instances: newClient(t, e, run.NewInstancesClient)}
}

// helperInstance is an instance (BETA) whose one container is this test
// binary serving HTTP (serveHelper) on port 8080 (its $PORT here), with
// MESSAGE=msg and a TCP startup probe on that port.
func helperInstance(t *testing.T, msg string) *runpb.Instance {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &runpb.Instance{
		LaunchStage: api.LaunchStage_BETA,
		Containers: []*runpb.Container{{
			Image:   "busybox",
			Command: []string{self},
			Env: []*runpb.EnvVar{
				{Name: serviceHelperEnv, Values: &runpb.EnvVar_Value{Value: "1"}},
				{Name: "MESSAGE", Values: &runpb.EnvVar_Value{Value: msg}},
			},
			Ports:        []*runpb.ContainerPort{{ContainerPort: 8080}},
			StartupProbe: tcpProbe(8080),
		}},
	}
}

// shInstance is an instance (BETA) running an sh script, with the path
// of a file as $0.
func shInstance(script, file string, policy runpb.Instance_RestartPolicy) *runpb.Instance {
	return &runpb.Instance{
		LaunchStage:   api.LaunchStage_BETA,
		RestartPolicy: policy,
		Containers:    []*runpb.Container{{Image: "busybox", Command: []string{"sh", "-c", script, file}}},
	}
}

type instanceOp interface {
	Wait(context.Context, ...gax.CallOption) (*runpb.Instance, error)
}

func waitInstance(t *testing.T, op instanceOp, err error) (*runpb.Instance, error) {
	t.Helper()
	if err != nil {
		t.Fatalf("instances call: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return op.Wait(ctx)
}

func (e *instEnv) create(t *testing.T, id string, in *runpb.Instance) (*runpb.Instance, error) {
	t.Helper()
	op, err := e.instances.CreateInstance(context.Background(), &runpb.CreateInstanceRequest{Parent: instParent, InstanceId: id, Instance: in})
	return waitInstance(t, op, err)
}

func (e *instEnv) get(t *testing.T, id string) *runpb.Instance {
	t.Helper()
	in, err := e.instances.GetInstance(context.Background(), &runpb.GetInstanceRequest{Name: instParent + "/instances/" + id})
	if err != nil {
		t.Fatalf("GetInstance(%s): %v", id, err)
	}
	return in
}

func (e *instEnv) stop(t *testing.T, name string) *runpb.Instance {
	t.Helper()
	op, err := e.instances.StopInstance(context.Background(), &runpb.StopInstanceRequest{Name: name})
	in, err := waitInstance(t, op, err)
	if err != nil {
		t.Fatalf("StopInstance operation: %v", err)
	}
	return in
}

func (e *instEnv) start(t *testing.T, name string) (*runpb.Instance, error) {
	t.Helper()
	op, err := e.instances.StartInstance(context.Background(), &runpb.StartInstanceRequest{Name: name})
	return waitInstance(t, op, err)
}

// running returns the instance's Running condition: its state and, for
// a condition with an instance reason, the reason.
func running(in *runpb.Instance) (runpb.Condition_State, runpb.Condition_InstanceReason) {
	c := in.GetTerminalCondition()
	if c.GetType() != "Running" {
		return runpb.Condition_STATE_UNSPECIFIED, 0
	}
	return c.GetState(), c.GetInstanceReason()
}

// waitState polls the instance until its Running condition is state
// with reason.
func (e *instEnv) waitState(t *testing.T, id string, state runpb.Condition_State, reason runpb.Condition_InstanceReason) *runpb.Instance {
	t.Helper()
	var in *runpb.Instance
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		in = e.get(t, id)
		if s, r := running(in); s == state && r == reason {
			return in
		}
	}
	t.Fatalf("instance %s: terminal condition %v, want %v %v", id, in.GetTerminalCondition(), state, reason)
	return nil
}

func pidOf(t *testing.T, url, token string) int {
	t.Helper()
	code, body := call(t, url, "/pid", token)
	pid, err := strconv.Atoi(body)
	if code != http.StatusOK || err != nil {
		t.Fatalf("GET /pid: %d %q", code, body)
	}
	return pid
}

// lines waits until file has at least n lines and returns them.
func lines(t *testing.T, file string, n int) []string {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		got = strings.Fields(string(b))
		if len(got) >= n {
			return got
		}
	}
	t.Fatalf("%s has %d lines, want %d", file, len(got), n)
	return nil
}

// TestInstanceServesThroughItsURL creates an instance running an HTTP
// server and calls it through its URL: the output fields once it runs,
// the environment its container gets, and the invoker check's answers.
func TestInstanceServesThroughItsURL(t *testing.T) {
	e := newInstEnv(t)
	in := helperInstance(t, "hi")
	in.LaunchStage = api.LaunchStage_ALPHA
	got, err := e.create(t, "web", in)
	if err != nil {
		t.Fatalf("CreateInstance operation: %v", err)
	}
	if s, _ := running(got); s != runpb.Condition_CONDITION_SUCCEEDED {
		t.Errorf("terminal condition %v", got.TerminalCondition)
	}
	for _, c := range got.Conditions {
		if c.State != runpb.Condition_CONDITION_SUCCEEDED || (c.Type != "ContainerReady" && c.Type != "ResourcesAvailable") {
			t.Errorf("condition %v", c)
		}
	}
	switch {
	case got.Name != instParent+"/instances/web" || got.Uid == "" || got.Generation != 1 || got.ObservedGeneration != 1 || got.Etag == "":
		t.Errorf("name %q, uid %q, generation %d/%d, etag %q", got.Name, got.Uid, got.Generation, got.ObservedGeneration, got.Etag)
	case len(got.Urls) != 1 || !strings.HasPrefix(got.Urls[0], "http://127.0.0.1:"):
		t.Errorf("urls %q", got.Urls)
	case got.Reconciling || got.LaunchStage != api.LaunchStage_BETA:
		t.Errorf("reconciling %v, launch stage %v (want BETA for ALPHA)", got.Reconciling, got.LaunchStage)
	case got.RestartPolicy != runpb.Instance_ON_FAILURE || got.Ingress != runpb.IngressTraffic_INGRESS_TRAFFIC_ALL:
		t.Errorf("restart policy %v, ingress %v", got.RestartPolicy, got.Ingress)
	case !strings.Contains(got.LogUri, "cloud_run_instance"):
		t.Errorf("log uri %q", got.LogUri)
	case len(got.ContainerStatuses) != 1 || !strings.HasPrefix(got.ContainerStatuses[0].ImageDigest, "sha256:"):
		t.Errorf("container statuses %v", got.ContainerStatuses)
	}
	u := got.Urls[0]
	tok := e.srv.IDToken(u)
	if code, body := call(t, u, "/", tok); code != http.StatusOK || body != "  hi" {
		t.Errorf("GET / with a token: %d %q", code, body)
	}
	code, body := call(t, u, "/env", tok)
	var env map[string]string
	if err := json.Unmarshal([]byte(body), &env); code != http.StatusOK || err != nil {
		t.Fatalf("GET /env: %d %q", code, body)
	}
	if env["PORT"] == "" || env["GCE_METADATA_HOST"] != e.srv.MetadataHost() || env["K_SERVICE"] != "" {
		t.Errorf("container environment %v", env)
	}
	for _, tc := range []struct {
		name, token string
		code        int
	}{
		{"no token", "", http.StatusForbidden},
		{"the URL with a slash", e.srv.IDToken(u + "/"), http.StatusOK},
		{"another audience", e.srv.IDToken("http://127.0.0.1:1"), http.StatusUnauthorized},
		{"not a token", "ya29.not-an-id-token", http.StatusUnauthorized},
	} {
		if code, body := call(t, u, "/", tc.token); code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.code)
		}
	}

	// The URL's settings change without a restart.
	pid := pidOf(t, u, tok)
	got.InvokerIamDisabled = true
	op, err := e.instances.UpdateInstance(context.Background(), &runpb.UpdateInstanceRequest{Instance: got, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"invoker_iam_disabled"}}})
	if up, err := waitInstance(t, op, err); err != nil || up.Generation != 2 || up.ObservedGeneration != 2 {
		t.Fatalf("UpdateInstance: %v, %v", up, err)
	}
	if got := pidOf(t, u, ""); got != pid {
		t.Errorf("the update restarted the container (%d, then %d)", pid, got)
	}
}

// TestInstanceStopStart stops an instance, whose container gets SIGTERM
// and whose URL then answers 503, and starts it again: the same name,
// uid and URL, a new process.
func TestInstanceStopStart(t *testing.T) {
	e := newInstEnv(t)
	in := helperInstance(t, "")
	in.InvokerIamDisabled = true
	got, err := e.create(t, "cycle", in)
	if err != nil {
		t.Fatal(err)
	}
	u := got.Urls[0]
	pid1 := pidOf(t, u, "")
	stopped := e.stop(t, got.Name)
	if s, r := running(stopped); s != runpb.Condition_CONDITION_FAILED || r != runpb.Condition_INSTANCE_STOPPED || stopped.Reconciling {
		t.Errorf("after Stop: %v, reconciling %v", stopped.TerminalCondition, stopped.Reconciling)
	}
	if !processGone(pid1) {
		t.Errorf("process %d still runs after Stop", pid1)
	}
	if code, _ := call(t, u, "/", ""); code != http.StatusServiceUnavailable {
		t.Errorf("GET a stopped instance: %d, want 503", code)
	}
	// Stopping a stopped instance leaves it stopped.
	e.stop(t, got.Name)

	started, err := e.start(t, got.Name)
	if err != nil {
		t.Fatalf("StartInstance operation: %v", err)
	}
	if started.Uid != got.Uid || started.Urls[0] != u || started.Name != got.Name {
		t.Errorf("after Start: uid %q, urls %q (was %q, %q)", started.Uid, started.Urls, got.Uid, u)
	}
	if s, _ := running(started); s != runpb.Condition_CONDITION_SUCCEEDED {
		t.Errorf("after Start: %v", started.TerminalCondition)
	}
	if pid2 := pidOf(t, u, ""); pid2 == pid1 {
		t.Errorf("the same process %d after Stop and Start", pid1)
	}
	// Starting a running instance leaves it as it is.
	pid2 := pidOf(t, u, "")
	if _, err := e.start(t, got.Name); err != nil {
		t.Fatal(err)
	}
	if pid := pidOf(t, u, ""); pid != pid2 {
		t.Errorf("Start of a running instance restarted it (%d, then %d)", pid2, pid)
	}
	// A stale etag is refused.
	if _, err := e.instances.StopInstance(context.Background(), &runpb.StopInstanceRequest{Name: got.Name, Etag: got.Etag}); codeOf(err) != codes.Aborted {
		t.Errorf("Stop with a stale etag: %v, want Aborted", err)
	}
}

// TestInstanceRestartPolicies runs containers that exit under each
// restart policy: ALWAYS restarts after a clean exit, ON_FAILURE after a
// failure only, NEVER never; what does not restart reports why.
func TestInstanceRestartPolicies(t *testing.T) {
	e := newInstEnv(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		id     string
		policy runpb.Instance_RestartPolicy
		code   int
		// restarts: the container runs again and again; else it runs
		// once and the instance ends with reason.
		restarts bool
		reason   runpb.Condition_InstanceReason
		msg      string
	}{
		{"always", runpb.Instance_ALWAYS, 0, true, 0, ""},
		{"on-failure", runpb.Instance_ON_FAILURE, 3, true, 0, ""},
		{"on-failure-clean", runpb.Instance_ON_FAILURE, 0, false, runpb.Condition_INSTANCE_REASON_UNSPECIFIED, "The container exited (exit code 0)."},
		{"never", runpb.Instance_NEVER, 3, false, runpb.Condition_INSTANCE_NON_ZERO_EXIT_CODE, "The container exited with an error (exit code 3)."},
		{"never-clean", runpb.Instance_NEVER, 0, false, runpb.Condition_INSTANCE_REASON_UNSPECIFIED, "The container exited (exit code 0)."},
	} {
		file := filepath.Join(dir, tc.id)
		_, err := e.create(t, tc.id, shInstance(`echo run >> "$0"; sleep 0.05; exit `+strconv.Itoa(tc.code), file, tc.policy))
		if err != nil {
			t.Errorf("%s: CreateInstance operation: %v", tc.id, err)
			continue
		}
		if tc.restarts {
			lines(t, file, 3)
			in := e.get(t, tc.id)
			if s, _ := running(in); s == runpb.Condition_CONDITION_FAILED {
				t.Errorf("%s: %v while it restarts", tc.id, in.TerminalCondition)
			}
			e.stop(t, in.Name)
			continue
		}
		in := e.waitState(t, tc.id, runpb.Condition_CONDITION_FAILED, tc.reason)
		if in.TerminalCondition.Message != tc.msg || in.Reconciling {
			t.Errorf("%s: %v, reconciling %v", tc.id, in.TerminalCondition, in.Reconciling)
		}
		time.Sleep(200 * time.Millisecond)
		if got := lines(t, file, 1); len(got) != 1 {
			t.Errorf("%s: ran %d times, want once", tc.id, len(got))
		}
	}
	var system []string
	for _, le := range e.listLogs(t, `resource.type="cloud_run_instance" AND resource.labels.instance_name="never" AND logName:"varlog"`) {
		system = append(system, le.GetTextPayload())
	}
	if len(system) != 1 || system[0] != "Container called exit(3)." {
		t.Errorf("system log of never: %q", system)
	}
}

// TestInstanceRestartBackoff checks that restarts in a row wait longer
// and longer, and that the instance reports the restart meanwhile.
func TestInstanceRestartBackoff(t *testing.T) {
	e := newInstEnv(t, gcptest.WithInstanceRestartBackoff(200*time.Millisecond, 400*time.Millisecond))
	file := filepath.Join(t.TempDir(), "runs")
	if _, err := e.create(t, "loop", shInstance(`date +%s%N >> "$0"; exit 1`, file, runpb.Instance_ALWAYS)); err != nil {
		t.Fatal(err)
	}
	in := e.waitState(t, "loop", runpb.Condition_CONDITION_RECONCILING, runpb.Condition_INSTANCE_NON_ZERO_EXIT_CODE)
	if msg := in.TerminalCondition.Message; !strings.HasPrefix(msg, "The container exited with an error (exit code 1). The instance restarts in ") || !in.Reconciling {
		t.Errorf("while it restarts: %v, reconciling %v", in.TerminalCondition, in.Reconciling)
	}
	got := lines(t, file, 4)
	var at []int64
	for _, l := range got[:4] {
		n, _ := strconv.ParseInt(l, 10, 64)
		at = append(at, n)
	}
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond} {
		if d := time.Duration(at[i+1] - at[i]); d < want {
			t.Errorf("restart %d after %s, want at least %s", i+1, d, want)
		}
	}
	e.stop(t, in.Name)
}

// TestInstanceFailsToStart creates an instance whose container exits
// before its startup probe passes: the operation fails with the cause
// and, under NEVER, the instance stays failed.
func TestInstanceFailsToStart(t *testing.T) {
	e := newInstEnv(t)
	in := shInstance(`exit 7`, "x", runpb.Instance_NEVER)
	in.Containers[0].StartupProbe = tcpProbe(freePort())
	_, err := e.create(t, "bad", in)
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "The container exited with an error (exit code 7).") {
		t.Fatalf("CreateInstance operation: %v", err)
	}
	e.waitState(t, "bad", runpb.Condition_CONDITION_FAILED, runpb.Condition_INSTANCE_NON_ZERO_EXIT_CODE)
}

// TestInstanceDependsOn runs a sidecar and a main container that
// depends on it and shares an in-memory volume with it: main starts only
// once the sidecar's startup probe passed (the sidecar wrote the
// volume's ready file first), and the URL reaches main.
func TestInstanceDependsOn(t *testing.T) {
	e := newInstEnv(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort()
	mount := []*runpb.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	in := helperInstance(t, "main")
	in.InvokerIamDisabled = true
	in.RestartPolicy = runpb.Instance_NEVER
	in.Volumes = []*runpb.Volume{{Name: "shared", VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{Medium: runpb.EmptyDirVolumeSource_MEMORY}}}}
	main := in.Containers[0]
	main.Name = "main"
	main.DependsOn = []string{"side"}
	main.VolumeMounts = mount
	main.Command = []string{"sh", "-c", `test -f "$0/ready" || exit 9; exec "$1"`, "/shared", self}
	in.Containers = append(in.Containers, &runpb.Container{
		Name:         "side",
		Image:        "busybox",
		Command:      []string{self},
		Args:         []string{"sidecar", strconv.Itoa(int(port)), "/shared", "300ms"},
		Env:          []*runpb.EnvVar{{Name: helperEnv, Values: &runpb.EnvVar_Value{Value: "1"}}},
		VolumeMounts: mount,
		StartupProbe: tcpProbe(port),
	})
	got, err := e.create(t, "pair", in)
	if err != nil {
		t.Fatalf("CreateInstance operation: %v", err)
	}
	if code, body := call(t, got.Urls[0], "/", ""); code != http.StatusOK || body != "  main" {
		t.Errorf("GET /: %d %q", code, body)
	}
	if len(got.ContainerStatuses) != 2 || got.ContainerStatuses[0].Name != "main" || got.ContainerStatuses[1].Name != "side" {
		t.Errorf("container statuses %v", got.ContainerStatuses)
	}
	logs := e.listLogs(t, `resource.labels.instance_name="pair" AND labels."run.googleapis.com/container_name"="side"`)
	if len(logs) == 0 || logs[0].Labels["instanceId"] == "" {
		t.Errorf("the sidecar's log entries: %v", logs)
	}
}

// TestInstanceImage runs an instance from an image of a registry the
// Server pulls from: its container status has the image's digest; an
// image that is not there fails the start with Cloud Run's message.
func TestInstanceImage(t *testing.T) {
	host := startRegistry(t)
	img := appImage(t, runtime.GOARCH)
	push(t, host+"/app:v1", img)
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	e := newInstEnv(t, gcptest.WithImageRegistry(host))
	in := &runpb.Instance{LaunchStage: api.LaunchStage_BETA, RestartPolicy: runpb.Instance_NEVER, Containers: []*runpb.Container{{Image: host + "/app:v1"}}}
	got, err := e.create(t, "app", in)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.ContainerStatuses; len(s) != 1 || s[0].ImageDigest != digest.String() {
		t.Errorf("container statuses %v, want digest %s", s, digest)
	}
	done := e.waitState(t, "app", runpb.Condition_CONDITION_FAILED, runpb.Condition_INSTANCE_REASON_UNSPECIFIED)
	if done.TerminalCondition.Message != "The container exited (exit code 0)." {
		t.Errorf("once run: %v", done.TerminalCondition)
	}
	var out []string
	for _, le := range e.listLogs(t, `resource.labels.instance_name="app" AND logName:"stdout"`) {
		out = append(out, le.GetTextPayload())
	}
	if strings.Join(out, "|") != "greeting=hello args=default|from the image" {
		t.Errorf("output %q", out)
	}

	in.Containers[0].Image = host + "/missing:v1"
	_, err = e.create(t, "missing", in)
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "Image '"+host+"/missing:v1' not found.") {
		t.Errorf("a missing image: %v", err)
	}
	if ready := conditionOf(e.get(t, "missing"), "ContainerReady"); ready.GetState() != runpb.Condition_CONDITION_FAILED || ready.GetReason() != runpb.Condition_CONTAINER_MISSING {
		t.Errorf("ContainerReady %v", ready)
	}
}

// TestInstanceUpdateRestarts updates what an instance runs: its
// container restarts with the change behind the same URL.
func TestInstanceUpdateRestarts(t *testing.T) {
	e := newInstEnv(t)
	in := helperInstance(t, "v1")
	in.InvokerIamDisabled = true
	got, err := e.create(t, "upd", in)
	if err != nil {
		t.Fatal(err)
	}
	u := got.Urls[0]
	pid := pidOf(t, u, "")
	next := helperInstance(t, "v2")
	next.Name, next.InvokerIamDisabled = got.Name, true
	op, err := e.instances.UpdateInstance(context.Background(), &runpb.UpdateInstanceRequest{Instance: next})
	up, err := waitInstance(t, op, err)
	if err != nil || up.Generation != 2 || up.ObservedGeneration != 2 || up.Urls[0] != u || up.Uid != got.Uid {
		t.Fatalf("UpdateInstance operation: %v, %v", up, err)
	}
	if code, body := call(t, u, "/", ""); code != http.StatusOK || body != "  v2" {
		t.Errorf("GET / after the update: %d %q", code, body)
	}
	if !processGone(pid) {
		t.Errorf("the old process %d still runs", pid)
	}
	// Without launch_stage the update is refused.
	next.LaunchStage = api.LaunchStage_GA
	if _, err := e.instances.UpdateInstance(context.Background(), &runpb.UpdateInstanceRequest{Instance: next}); codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "launch stage") {
		t.Errorf("an update at GA: %v", err)
	}
}

// TestInstanceLivenessProbe restarts an instance whose liveness probe
// fails (ON_FAILURE).
func TestInstanceLivenessProbe(t *testing.T) {
	e := newInstEnv(t)
	in := helperInstance(t, "")
	in.InvokerIamDisabled = true
	in.Containers[0].LivenessProbe = &runpb.Probe{
		InitialDelaySeconds: 1, PeriodSeconds: 1, FailureThreshold: 1,
		ProbeType: &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{Path: "/status?code=500"}},
	}
	got, err := e.create(t, "live", in)
	if err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, got.Urls[0], "")
	waitGone(t, pid)
	if next := pidOf(t, got.Urls[0], ""); next == pid {
		t.Errorf("the same process after the liveness probe failed")
	}
	var system []string
	for _, le := range e.listLogs(t, `resource.labels.instance_name="live" AND logName="projects/proj/logs/run.googleapis.com%2Fvarlog%2Fsystem"`) {
		system = append(system, le.GetTextPayload())
	}
	if len(system) < 2 || !strings.HasPrefix(system[0], `LIVENESS HTTP probe failed 1 time consecutively for container "live"`) || !strings.HasPrefix(system[1], "The instance restarts in ") {
		t.Errorf("system log %q", system)
	}
}

// TestInstanceDelete deletes a running instance: its container stops,
// its URL refuses connections, and neither Get nor List finds it.
func TestInstanceDelete(t *testing.T) {
	e := newInstEnv(t)
	in := helperInstance(t, "")
	in.InvokerIamDisabled = true
	got, err := e.create(t, "gone", in)
	if err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, got.Urls[0], "")
	op, err := e.instances.DeleteInstance(context.Background(), &runpb.DeleteInstanceRequest{Name: got.Name})
	deleted, err := waitInstance(t, op, err)
	if err != nil || deleted.DeleteTime == nil || deleted.TerminalCondition.GetInstanceReason() != runpb.Condition_INSTANCE_DELETED {
		t.Fatalf("DeleteInstance operation: %v, %v", deleted, err)
	}
	if !processGone(pid) {
		t.Errorf("process %d still runs", pid)
	}
	if _, err := http.Get(got.Urls[0]); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET after the delete: %v, want connection refused", err)
	}
	if _, err := e.instances.GetInstance(context.Background(), &runpb.GetInstanceRequest{Name: got.Name}); codeOf(err) != codes.NotFound {
		t.Errorf("GetInstance after the delete: %v", err)
	}
	it := e.instances.ListInstances(context.Background(), &runpb.ListInstancesRequest{Parent: instParent})
	if in, err := it.Next(); !errors.Is(err, iterator.Done) {
		t.Errorf("ListInstances after the delete: %v, %v", in, err)
	}
	for name, do := range map[string]func() error{
		"Start": func() error {
			_, err := e.instances.StartInstance(context.Background(), &runpb.StartInstanceRequest{Name: got.Name})
			return err
		},
		"Stop": func() error {
			_, err := e.instances.StopInstance(context.Background(), &runpb.StopInstanceRequest{Name: got.Name})
			return err
		},
		"Delete": func() error {
			_, err := e.instances.DeleteInstance(context.Background(), &runpb.DeleteInstanceRequest{Name: got.Name})
			return err
		},
	} {
		if err := do(); codeOf(err) != codes.NotFound {
			t.Errorf("%s after the delete: %v", name, err)
		}
	}
}

// TestInstanceLogs checks that an instance's output is in Cloud Logging
// under the resource type cloud_run_instance.
func TestInstanceLogs(t *testing.T) {
	e := newInstEnv(t)
	in := helperInstance(t, "")
	in.InvokerIamDisabled = true
	got, err := e.create(t, "logs", in)
	if err != nil {
		t.Fatal(err)
	}
	pidOf(t, got.Urls[0], "")
	lines := e.stdoutLines(t, `resource.type="cloud_run_instance" AND resource.labels.instance_name="logs"`, 2, func(le *loggingpb.LogEntry) bool {
		l := le.Resource.Labels
		return l["location"] == "europe-west4" && l["project_id"] == "proj" && le.Labels["instanceId"] != ""
	})
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "listening on ") || lines[1] != "GET /pid" {
		t.Errorf("logged %q", lines)
	}
}

// TestInstanceOperationsPending creates an instance without instant
// operations: the operation's metadata and the instance report
// reconciling, with the URL already known, until the operation is done.
func TestInstanceOperationsPending(t *testing.T) {
	e := newEnv(t, gcptest.WithReconcileDelay(300*time.Millisecond), gcptest.WithStopGracePeriod(time.Second))
	c := newClient(t, e, run.NewInstancesClient)
	ctx := context.Background()
	op, err := c.CreateInstance(ctx, &runpb.CreateInstanceRequest{Parent: instParent, InstanceId: "slow", Instance: helperInstance(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	md, err := op.Metadata()
	if err != nil || md.GetName() != instParent+"/instances/slow" || !md.Reconciling || op.Done() {
		t.Fatalf("a new operation: metadata %v, %v, done %v", md, err, op.Done())
	}
	in, err := c.GetInstance(ctx, &runpb.GetInstanceRequest{Name: md.Name})
	if s, _ := running(in); err != nil || !in.Reconciling || len(in.Urls) != 1 || s != runpb.Condition_CONDITION_RECONCILING {
		t.Fatalf("GetInstance while it is created: %v, %v", in, err)
	}
	var got *runpb.Instance
	for !op.Done() {
		if got, err = op.Poll(ctx); err != nil {
			t.Fatalf("CreateInstance operation: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s, _ := running(got); got.Reconciling || s != runpb.Condition_CONDITION_SUCCEEDED {
		t.Errorf("once created: %v, reconciling %v", got.TerminalCondition, got.Reconciling)
	}
}
