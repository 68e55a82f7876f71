package cloudrun

import (
	"errors"
	"testing"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/meta"
	"github.com/gantryhq/gantry/internal/naming"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/testing/protocmp"
)

// TestAgentJobShape checks the job of a container under the agent, field
// by field: the volume, the sidecar that fills it and answers the probe,
// and the user's container, which depends on it and runs the agent with
// the real command after "--".
func TestAgentJobShape(t *testing.T) {
	r := &Runtime{cfg: Config{Session: "s1"}, agent: mustAgentState(t, AgentConfig{Image: "reg.example/gantry-agent@sha256:" + sha, Relay: "https://relay.example/"})}
	spec := gantry.Spec{Name: "wrapped", Image: "busybox", Cmd: []string{"sh", "-c", "echo hi"}, Env: []string{"A=1"}, Tty: true, OpenStdin: true, StopSignal: "SIGINT"}
	rec := meta.Record{ID: naming.NewID("wrapped"), Name: "wrapped", Created: time.Unix(0, 0).UTC(), Spec: spec}
	plan := &agentPlan{cmd: []string{"sh", "-c", "echo hi"}, port: 23456, secret: "00ff", relay: "https://relay.example/"}
	got, err := r.jobFor(rec, plan)
	if err != nil {
		t.Fatal(err)
	}
	task := got.GetTemplate().GetTemplate()
	want := &runpb.TaskTemplate{
		Containers: []*runpb.Container{{
			Name:    "main",
			Image:   "busybox",
			Command: []string{"/gantry/gantry-agent"},
			Args: []string{"-relay", "https://relay.example/agent?id=" + rec.ID, "-id", rec.ID, "-lifeline", "127.0.0.1:23456", "-record", "-relay-token", "metadata", "-tty", "-stdin", "--",
				"sh", "-c", "echo hi"},
			Env: []*runpb.EnvVar{
				{Name: "A", Values: &runpb.EnvVar_Value{Value: "1"}},
				{Name: "GANTRY_AGENT_SECRET", Values: &runpb.EnvVar_Value{Value: "00ff"}},
			},
			VolumeMounts: []*runpb.VolumeMount{{Name: "gantry-agent", MountPath: "/gantry"}},
			DependsOn:    []string{"gantry-agent"},
		}, {
			Name:         "gantry-agent",
			Image:        "reg.example/gantry-agent@sha256:" + sha,
			Command:      []string{"/gantry-agent"},
			Args:         []string{"install", "-ready", ":23456", "/gantry/gantry-agent"},
			VolumeMounts: []*runpb.VolumeMount{{Name: "gantry-agent", MountPath: "/gantry"}},
			Resources:    &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "100m", "memory": "64Mi"}},
			StartupProbe: &runpb.Probe{PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 60, ProbeType: &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: 23456}}},
		}},
		Volumes: []*runpb.Volume{{Name: "gantry-agent", VolumeType: &runpb.Volume_EmptyDir{EmptyDir: &runpb.EmptyDirVolumeSource{Medium: runpb.EmptyDirVolumeSource_MEMORY, SizeLimit: "64Mi"}}}},
	}
	if diff := cmp.Diff(want, task, protocmp.Transform(), protocmp.IgnoreOneofs(&runpb.TaskTemplate{}, "retries"), protocmp.IgnoreFields(&runpb.TaskTemplate{}, "timeout", "service_account")); diff != "" {
		t.Errorf("task (-want +got):\n%s", diff)
	}
	if secret, ok := hasAgent(&job{pb: got}); !ok || secret != "00ff" {
		t.Errorf("hasAgent = %q, %v; want the secret, true", secret, ok)
	}
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestAgentOnlyFields: a terminal, open input and any stop signal need
// the agent; without it they are refused before any call, and a
// container with NoAgentLabel does without it.
func TestAgentOnlyFields(t *testing.T) {
	with := &Runtime{agent: mustAgentState(t, AgentConfig{Image: "reg.example/a:1", Relay: "https://relay.example"})}
	without := &Runtime{}
	for _, spec := range []gantry.Spec{
		{Image: "busybox", Cmd: []string{"sh"}, Tty: true},
		{Image: "busybox", Cmd: []string{"sh"}, OpenStdin: true},
		{Image: "busybox", Cmd: []string{"sh"}, StopSignal: "SIGINT"},
	} {
		rec := meta.Record{ID: naming.NewID("x"), Name: "x", Spec: spec}
		if _, err := without.jobFor(rec, nil); !errors.Is(err, gantry.ErrNotSupported) {
			t.Errorf("%+v without the agent: %v, want ErrNotSupported", spec, err)
		}
		if _, err := with.jobFor(rec, &agentPlan{cmd: spec.Cmd, port: 20000, secret: "s", relay: "https://relay.example"}); err != nil {
			t.Errorf("%+v with the agent: %v", spec, err)
		}
	}
	opt := gantry.Spec{Image: "busybox", Labels: map[string]string{NoAgentLabel: "true"}}
	if with.wantsAgent(&opt) {
		t.Error("a container labelled NoAgentLabel gets the agent")
	}
}

// TestAgentConfigChecked: a Config.Agent without an image or a usable
// relay URL is refused by New before any connection.
func TestAgentConfigChecked(t *testing.T) {
	for _, a := range []AgentConfig{
		{Relay: "https://relay.example"},
		{Image: "reg.example/a:1"},
		{Image: "reg.example/a:1", Relay: "ftp://relay.example"},
		{Image: "reg.example/a:1", Relay: "https://relay.example/?x=1"},
		{Image: "UPPER CASE", Relay: "https://relay.example"},
		{Image: "reg.example/a:1", Relay: "https://relay.example", RelayImage: "reg.example/r:1"},
		{Image: "reg.example/a:1", RelayImage: "reg.example/r:1", RelayService: "Bad_Name"},
	} {
		_, err := New(t.Context(), Config{Project: "p", Region: "r", Agent: &a})
		if !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", a, err)
		}
	}
}

func mustAgentState(t *testing.T, cfg AgentConfig) *agentState {
	t.Helper()
	a, err := newAgentState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAgentSpecRefusals: what the agent cannot run with is refused before
// any call: its own variables in the spec, and 8 CPUs (its sidecar takes
// 0.1 of the task's 8).
func TestAgentSpecRefusals(t *testing.T) {
	with := &Runtime{agent: mustAgentState(t, AgentConfig{Image: "reg.example/a:1", Relay: "https://relay.example"})}
	plan := &agentPlan{cmd: []string{"true"}, port: 20000, secret: "s", relay: "https://relay.example"}
	for _, spec := range []gantry.Spec{
		{Image: "busybox", Env: []string{"GANTRY_AGENT_CONNECT=wss://elsewhere"}},
		{Image: "busybox", Secrets: []gantry.Secret{{Name: "s", Env: "GANTRY_AGENT_SECRET"}}},
		{Image: "busybox", Resources: gantry.Resources{CPU: 8}},
		{Image: "busybox", Resources: gantry.Resources{MemoryBytes: 32 << 30}},
	} {
		rec := meta.Record{ID: naming.NewID("x"), Name: "x", Spec: spec}
		if _, err := with.jobFor(rec, plan); !errors.Is(err, gantry.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", spec, err)
		}
		if _, err := with.jobFor(rec, nil); err != nil {
			t.Errorf("%+v without the agent: %v", spec, err)
		}
	}
}

// TestUserIDTokens: a user's credentials give the ID token their OAuth
// token carries, and say so when it has none.
func TestUserIDTokens(t *testing.T) {
	with := (&oauth2.Token{AccessToken: "access", Expiry: time.Now().Add(time.Hour)}).WithExtra(map[string]any{"id_token": "the-id-token"})
	tok, err := userIDTokens{oauth2.StaticTokenSource(with)}.Token()
	if err != nil || tok.AccessToken != "the-id-token" {
		t.Errorf("Token() = %v, %v; want the ID token", tok, err)
	}
	if _, err := (userIDTokens{oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "access"})}).Token(); err == nil {
		t.Error("a token without an ID token gave no error")
	}
}
