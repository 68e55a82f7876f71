package gcptest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"

	"github.com/gantryhq/gantry/gcptest"
)

// freePort returns a port in the range cloudrun draws the agent's from
// that nothing listens on now.
var nextPort = 20000 + int32(os.Getpid()%10000)

func freePort() int32 {
	nextPort++
	return nextPort
}

// sidecarJob is agentShapedJob with this test binary as the sidecar
// (helper "sidecar": it writes /gantry/ready after delay, listens on port
// and exits once /gantry/done exists) and mainScript as main's sh script,
// run with $1 = /gantry/ready and $2 = /gantry/done.
func sidecarJob(t *testing.T, port int32, delay, mainScript string) *runpb.Job {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	j := agentShapedJob("", port)
	main, side := j.Template.Template.Containers[0], j.Template.Template.Containers[1]
	main.Command = []string{"sh", "-c", mainScript, "sh"}
	main.Args = []string{"/gantry/ready", "/gantry/done"}
	side.Command = []string{self}
	side.Args = []string{"sidecar", strconv.Itoa(int(port)), "/gantry", delay}
	side.Env = []*runpb.EnvVar{{Name: "GCPTEST_TEST_HELPER", Values: &runpb.EnvVar_Value{Value: "1"}}}
	return j
}

// TestSidecarStartsFirstAndSharesAVolume runs the shape of job cloudrun
// writes with the agent: main starts only once the sidecar has written
// into the shared volume and its startup probe passed, reads what it
// wrote, and tells it to exit through the volume; every line is logged
// with the name of its container; the volume is gone afterwards.
func TestSidecarStartsFirstAndSharesAVolume(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	e.createJob(t, "pair", sidecarJob(t, freePort(), "300ms", `cat "$1"; echo "$1"; touch "$2"`))
	ex, tasks, opErr := e.runToEnd(t, "pair", nil)
	if opErr != nil || countsOf(ex) != (counts{Succeeded: 1}) {
		t.Fatalf("execution: %v, counts %+v, last attempt %v", opErr, countsOf(ex), tasks[0].GetLastAttemptResult())
	}
	entries := e.listLogs(t, `resource.labels.job_name="pair"`)
	var lines []string
	var listening, read time.Time
	for _, le := range entries {
		name := le.Labels["run.googleapis.com/container_name"]
		lines = append(lines, name+": "+le.GetTextPayload())
		switch {
		case name == "gantry-agent" && strings.HasPrefix(le.GetTextPayload(), "listening"):
			listening = le.Timestamp.AsTime()
		case name == "main" && le.GetTextPayload() == "ready":
			read = le.Timestamp.AsTime()
		}
	}
	if listening.IsZero() || read.IsZero() || read.Before(listening) {
		t.Errorf("logs %q: want the sidecar listening before main read the volume", lines)
	}
	if len(entries) != 3 {
		t.Fatalf("logs %q, want 3 lines", lines)
	}
	volumeFile := entries[2].GetTextPayload()
	if entries[2].Labels["run.googleapis.com/container_name"] != "main" || volumeFile == "/gantry/ready" || !strings.HasSuffix(volumeFile, "/ready") {
		t.Fatalf("main logged %q as the volume's file, want its host path", volumeFile)
	}
	if _, err := os.Stat(volumeFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the attempt's volume outlived it: stat %s: %v", volumeFile, err)
	}
}

// TestTaskEndsAtFirstFailure checks how a task of several containers ends
// when one fails: its exit code and message are those of the first
// failure, the other containers are stopped, and those waiting for a
// dependency never start.
func TestTaskEndsAtFirstFailure(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations(), gcptest.WithStopGracePeriod(time.Second))
	port := freePort()
	neverListens := func(script string, threshold int32) *runpb.Job {
		j := agentShapedJob(script, port)
		j.Template.Template.Containers[0].Command = []string{"sh", "-c", "echo main ran"}
		j.Template.Template.Containers[0].Args = nil
		j.Template.Template.Containers[1].StartupProbe.FailureThreshold = threshold
		return j
	}
	crasher := func() *runpb.Job {
		j := shJob("echo main started; sleep 30")
		j.Template.Template.Containers[0].Name = "main"
		j.Template.Template.Containers = append(j.Template.Template.Containers, &runpb.Container{
			Name: "crasher", Image: "busybox", Command: []string{"sh", "-c", "sleep 0.3; exit 5"},
		})
		return j
	}
	for _, tc := range []struct {
		name     string
		job      *runpb.Job
		code     int32
		signal   int32
		message  string
		mainRuns bool
	}{
		{"main fails", sidecarJob(t, port, "0s", `echo failing; touch "$2"; exit 3`), 3, 0, `The container "main" exited with an error (exit code 3).`, true},
		{"a sidecar fails first", crasher(), 5, 0, `The container "crasher" exited with an error (exit code 5).`, true},
		{"a startup probe never passes", neverListens("exec sleep 30", 1), 0, 15,
			`STARTUP TCP probe failed 1 time consecutively for container "gantry-agent" on port ` + strconv.Itoa(int(port)) + `. The instance was not started. Connection failed with status DEADLINE_EXCEEDED.`, false},
		{"a dependency exits before its probe passed", neverListens("exit 0", 60), 0, 0,
			`The container "gantry-agent" exited before its startup probe succeeded.`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			e.createJob(t, id, tc.job)
			begin := time.Now()
			ex, tasks, opErr := e.runToEnd(t, id, nil)
			if took := time.Since(begin); took > 8*time.Second {
				t.Errorf("the task took %s: its other containers were not stopped", took)
			}
			if codeOf(opErr) != codes.FailedPrecondition || countsOf(ex) != (counts{Failed: 1}) {
				t.Errorf("execution: %v, counts %+v", opErr, countsOf(ex))
			}
			r := tasks[0].GetLastAttemptResult()
			if r.GetExitCode() != tc.code || r.GetTermSignal() != tc.signal || r.GetStatus().GetMessage() != tc.message {
				t.Errorf("last attempt: exit %d signal %d %q, want %d %d %q", r.GetExitCode(), r.GetTermSignal(), r.GetStatus().GetMessage(), tc.code, tc.signal, tc.message)
			}
			if !strings.Contains(completed(ex.Conditions).GetMessage(), tc.message) {
				t.Errorf("execution's Completed condition %q does not quote %q", completed(ex.Conditions).GetMessage(), tc.message)
			}
			ran := len(e.listLogs(t, `resource.labels.job_name="`+id+`" AND labels."run.googleapis.com/container_name"="main"`)) > 0
			if ran != tc.mainRuns {
				t.Errorf("main ran: %v, want %v", ran, tc.mainRuns)
			}
		})
	}
}

// TestCancelStopsEveryContainer cancels a running task of two containers:
// both get SIGTERM, and the task reads as cancelled with main's signal.
func TestCancelStopsEveryContainer(t *testing.T) {
	e := newEnv(t, gcptest.WithStopGracePeriod(5*time.Second))
	ctx := context.Background()
	e.createJob(t, "cancel-pair", sidecarJob(t, freePort(), "0s", `cat "$1"; exec sleep 30`))
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/cancel-pair"})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := op.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(e.listLogs(t, `labels."run.googleapis.com/container_name"="main"`)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("main never ran")
		}
	}
	begin := time.Now()
	cop, err := e.execs.CancelExecution(ctx, &runpb.CancelExecutionRequest{Name: meta.Name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cop.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 4*time.Second {
		t.Errorf("cancelling took %s: a container waited for SIGKILL", took)
	}
	tasks := e.listTasks(t, meta.Name)
	r := tasks[0].GetLastAttemptResult()
	if codes.Code(r.GetStatus().GetCode()) != codes.Canceled || r.GetTermSignal() != 15 {
		t.Errorf("last attempt %v, want CANCELLED with main's SIGTERM", r)
	}
}

// TestProbePortsNeverShared runs two tasks at once whose sidecars listen
// on the same port: on Cloud Run each has its own network, here the
// emulator holds one task (scheduled, not started) until the other's
// attempt has ended, so neither fails to listen.
func TestProbePortsNeverShared(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	job := sidecarJob(t, freePort(), "200ms", `cat "$1"; touch "$2"`)
	job.Template.TaskCount, job.Template.Parallelism = 2, 2
	e.createJob(t, "same-port", job)
	ex, tasks, opErr := e.runToEnd(t, "same-port", nil)
	if opErr != nil || countsOf(ex) != (counts{Succeeded: 2}) {
		t.Fatalf("execution: %v, counts %+v", opErr, countsOf(ex))
	}
	a, b := tasks[0], tasks[1]
	if a.StartTime.AsTime().After(b.StartTime.AsTime()) {
		a, b = b, a
	}
	if b.StartTime.AsTime().Before(a.CompletionTime.AsTime()) {
		t.Errorf("task %s started at %s, before task %s completed at %s", b.Name, b.StartTime.AsTime(), a.Name, a.CompletionTime.AsTime())
	}
}

// TestContainerNameLabel checks that only the lines of a task of several
// containers carry the name of the container that wrote them.
func TestContainerNameLabel(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	e.createJob(t, "alone", shJob("echo alone"))
	if _, _, err := e.runToEnd(t, "alone", nil); err != nil {
		t.Fatal(err)
	}
	es := e.listLogs(t, `resource.labels.job_name="alone"`)
	if len(es) != 1 || es[0].GetTextPayload() != "alone" {
		t.Fatalf("logs %v", es)
	}
	if name, ok := es[0].Labels["run.googleapis.com/container_name"]; ok {
		t.Errorf("the line of a one-container task is labelled with container %q", name)
	}
}

// TestProbePortHeldByTheHost runs a task whose probe port some other
// process of this host listens on: the task stays scheduled, not started,
// until the port is free, as a probe would otherwise reach that process.
func TestProbePortHeldByTheHost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	port := freePort()
	l, err := net.Listen("tcp", ":"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e.createJob(t, "held-port", sidecarJob(t, port, "0s", `cat "$1"; touch "$2"`))
	op, err := e.jobs.RunJob(ctx, &runpb.RunJobRequest{Name: parent + "/jobs/held-port"})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := op.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	task := e.listTasks(t, meta.Name)[0]
	if task.ScheduledTime == nil || task.StartTime != nil {
		t.Errorf("while the port is taken the task is scheduled %v, started %v; want scheduled only", task.ScheduledTime, task.StartTime)
	}
	l.Close()
	if _, err := pollRun(t, op); err != nil {
		t.Errorf("once the port is free: %v", err)
	}
}

// TestHTTPAndGRPCProbes gates main on an HTTP startup probe (sent with
// its headers; 2xx and 3xx pass, anything else fails) and on a gRPC one.
func TestHTTPAndGRPCProbes(t *testing.T) {
	e := newEnv(t, gcptest.WithInstantOperations())
	port := freePort()
	withProbe := func(kind []string, probe *runpb.Probe) *runpb.Job {
		j := sidecarJob(t, port, "100ms", `cat "$1"; touch "$2"`)
		side := j.Template.Template.Containers[1]
		side.Args = append(side.Args, kind...)
		side.StartupProbe = probe
		return j
	}
	httpProbe := func(threshold int32) *runpb.Probe {
		return &runpb.Probe{PeriodSeconds: 1, FailureThreshold: threshold, ProbeType: &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{
			Path: "/ready", Port: port, HttpHeaders: []*runpb.HTTPHeader{{Name: "X-Probe", Value: "yes"}},
		}}}
	}
	grpcProbe := &runpb.Probe{PeriodSeconds: 1, FailureThreshold: 5, ProbeType: &runpb.Probe_Grpc{Grpc: &runpb.GRPCAction{Port: port}}}
	for _, tc := range []struct {
		name, want string
		job        *runpb.Job
	}{
		{"http 204", "", withProbe([]string{"http", "204"}, httpProbe(5))},
		{"http 302", "", withProbe([]string{"http", "302"}, httpProbe(5))},
		{"http 400", `STARTUP HTTP probe failed 1 time consecutively for container "gantry-agent" on path "/ready". The instance was not started. HTTP probe failed with status code 400.`,
			withProbe([]string{"http", "400"}, httpProbe(1))},
		{"grpc", "", withProbe([]string{"grpc"}, grpcProbe)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			e.createJob(t, id, tc.job)
			_, tasks, err := e.runToEnd(t, id, nil)
			msg := tasks[0].GetLastAttemptResult().GetStatus().GetMessage()
			if (err == nil) != (tc.want == "") || msg != tc.want {
				t.Errorf("execution: %v, last attempt %q; want %q", err, msg, tc.want)
			}
		})
	}
}
