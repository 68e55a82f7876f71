package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gantryhq/gantry"
)

// specFeatures sets, for each Spec feature, a valid use of it on a spec.
var specFeatures = map[gantry.Feature]func(h Harness, sp *gantry.Spec){
	gantry.FeaturePorts: func(_ Harness, sp *gantry.Spec) { sp.Ports = []gantry.Port{{Port: 8080}} },
	gantry.FeatureHealthcheck: func(_ Harness, sp *gantry.Spec) {
		sp.Healthcheck = &gantry.Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: time.Second}
	},
	gantry.FeatureRestartPolicy: func(_ Harness, sp *gantry.Spec) {
		sp.RestartPolicy = gantry.RestartPolicy{Name: gantry.RestartOnFailure, MaxRetries: 1}
	},
	gantry.FeatureResources: func(_ Harness, sp *gantry.Spec) {
		sp.Resources = gantry.Resources{CPU: 1, MemoryBytes: 512 << 20}
	},
	gantry.FeatureGPU: func(_ Harness, sp *gantry.Spec) {
		sp.Resources = gantry.Resources{CPU: 4, MemoryBytes: 16 << 30, GPUs: 1, GPUType: "nvidia-l4"}
	},
	gantry.FeatureTimeout: func(_ Harness, sp *gantry.Spec) { sp.Timeout = time.Hour },
	gantry.FeatureMounts: func(_ Harness, sp *gantry.Spec) {
		sp.Mounts = []gantry.Mount{{Type: gantry.MountTmpfs, Target: "/runtimetest-data"}}
	},
	gantry.FeatureSecrets: func(h Harness, sp *gantry.Spec) {
		name := h.SecretName
		if name == "" {
			name = "runtimetest"
		}
		sp.Secrets = []gantry.Secret{{Name: name, Env: "RUNTIMETEST_SECRET"}}
	},
	gantry.FeatureUser: func(_ Harness, sp *gantry.Spec) { sp.User = "65534" },
	gantry.FeatureTty:  func(_ Harness, sp *gantry.Spec) { sp.Tty = true },
	gantry.FeatureStdin: func(_ Harness, sp *gantry.Spec) {
		sp.OpenStdin = true
	},
	gantry.FeatureSidecars: func(h Harness, sp *gantry.Spec) {
		sp.Sidecars = []gantry.Sidecar{{Name: "side", Image: h.Image, Entrypoint: []string{"sh", "-c"}, Cmd: []string{"sleep 1"}}}
	},
}

// refusals performs each optional or core operation on a running
// container (or, for start, a created one).
var refusals = map[gantry.Feature]func(ctx context.Context, rt gantry.Runtime, id string) error{
	gantry.FeatureStart: func(ctx context.Context, rt gantry.Runtime, id string) error { return rt.Start(ctx, id) },
	gantry.FeatureStop: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return rt.Stop(ctx, id, gantry.StopOptions{Timeout: new(time.Duration(0))})
	},
	gantry.FeatureKill: func(ctx context.Context, rt gantry.Runtime, id string) error { return rt.Kill(ctx, id, "") },
	gantry.FeatureRemove: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return rt.Remove(ctx, id, gantry.RemoveOptions{Force: true})
	},
	gantry.FeatureWait: func(ctx context.Context, rt gantry.Runtime, id string) error {
		_, err := rt.Wait(ctx, id, gantry.WaitNotRunning)
		return err
	},
	gantry.FeatureLogs: func(ctx context.Context, rt gantry.Runtime, id string) error {
		_, err := readLogs(ctx, rt, id, gantry.LogsOptions{})
		return err
	},
	gantry.FeatureLogsFollow: func(ctx context.Context, rt gantry.Runtime, id string) error {
		_, err := readLogs(ctx, rt, id, gantry.LogsOptions{Follow: true})
		return err
	},
	gantry.FeatureExec: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return execRefused(ctx, rt, id, false)
	},
	gantry.FeatureExecTTY: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return execRefused(ctx, rt, id, true)
	},
	gantry.FeatureInspect: func(ctx context.Context, rt gantry.Runtime, id string) error {
		_, err := rt.Inspect(ctx, id)
		return err
	},
	gantry.FeatureList: func(ctx context.Context, rt gantry.Runtime, id string) error {
		_, err := rt.List(ctx, gantry.ListOptions{})
		return err
	},
	gantry.FeatureRestart: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return gantry.Restart(ctx, rt, id, gantry.StopOptions{Timeout: new(time.Duration(0))})
	},
	gantry.FeaturePause: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return gantry.Pause(ctx, rt, id)
	},
	gantry.FeatureRename: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return gantry.Rename(ctx, rt, id, "rtt-renamed-"+randomHex(5))
	},
	gantry.FeatureUpdate: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return gantry.Update(ctx, rt, id, gantry.Resources{CPU: 2, MemoryBytes: 1 << 30})
	},
	gantry.FeatureAttach: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return gantry.Attach(ctx, rt, id, gantry.AttachOptions{Stdout: new(bytes.Buffer)})
	},
	gantry.FeatureTop: func(ctx context.Context, rt gantry.Runtime, id string) error {
		_, err := gantry.Top(ctx, rt, id)
		return err
	},
	gantry.FeatureStats: func(ctx context.Context, rt gantry.Runtime, id string) error {
		_, err := gantry.ContainerStats(ctx, rt, id)
		return err
	},
	gantry.FeaturePortForward: func(ctx context.Context, rt gantry.Runtime, id string) error {
		c, err := gantry.DialPort(ctx, rt, id, 8080)
		if err == nil {
			c.Close()
		}
		return err
	},
	gantry.FeatureSignals: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return rt.Kill(ctx, id, "SIGUSR1")
	},
	gantry.FeatureStopTimeout: func(ctx context.Context, rt gantry.Runtime, id string) error {
		return rt.Stop(ctx, id, gantry.StopOptions{Timeout: new(time.Minute)})
	},
}

// execRefused runs an exec that would print; a refused exec must not.
func execRefused(ctx context.Context, rt gantry.Runtime, id string, tty bool) error {
	var out bytes.Buffer
	_, err := rt.Exec(ctx, id, gantry.ExecConfig{Cmd: sh("echo ran"), Tty: tty, Stdout: &out, Stderr: &out})
	if out.Len() > 0 {
		return errors.New("the refused exec ran and printed " + out.String())
	}
	return err
}

func (s *suite) testCapabilities(t *testing.T) {
	t.Run("Table", func(t *testing.T) {
		known := map[gantry.Feature]bool{}
		for _, f := range gantry.Features() {
			known[f] = true
			c := s.caps[f]
			if c.Level < gantry.None || c.Level > gantry.Full {
				t.Errorf("feature %q: level %d is not none, partial or full", f, c.Level)
			}
			if c.Level != gantry.Full && strings.TrimSpace(c.Note) == "" {
				t.Errorf("feature %q is %s but its note does not say what is missing", f, c.Level)
			}
		}
		for f := range s.caps {
			if !known[f] {
				t.Errorf("the table has a row for %q, which is no gantry feature", f)
			}
		}
		for _, f := range []gantry.Feature{gantry.FeatureCreate, gantry.FeatureInspect, gantry.FeatureRemove} {
			if !s.caps.Supported(f) {
				t.Errorf("core operation %q is declared none; the suite cannot check anything else", f)
			}
		}
	})
	for _, f := range gantry.Features() {
		if s.caps.Supported(f) && specFeatures[f] == nil {
			continue
		}
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			switch {
			case specFeatures[f] != nil && !s.caps.Supported(f):
				s.specRefused(t, f)
			case specFeatures[f] != nil:
				s.specAccepted(t, f)
			case f == gantry.FeatureCreate:
				s.createRefused(t)
			default:
				s.operationRefused(t, f)
			}
		})
	}
}

// createRefused checks a backend that declares create none.
func (s *suite) createRefused(t *testing.T) {
	rt := s.runtime(t)
	c, err := rt.Create(s.ctx(t), s.spec(newTag(), "exit 0"))
	if err == nil {
		removeLater(t, rt, c)
	}
	if !errors.Is(err, gantry.ErrNotSupported) {
		t.Errorf("Create, declared none: %v, want ErrNotSupported", err)
	}
}

// specRefused checks that a Spec feature declared none makes Create fail
// with ErrNotSupported and create nothing.
func (s *suite) specRefused(t *testing.T, f gantry.Feature) {
	rt := s.runtime(t)
	tag := newTag()
	spec := s.spec(tag, "exit 0")
	specFeatures[f](s.h, &spec)
	c, err := rt.Create(s.ctx(t), spec)
	if err == nil {
		removeLater(t, rt, c)
	}
	if !errors.Is(err, gantry.ErrNotSupported) {
		t.Fatalf("Create using %q, declared none (%s): %v, want ErrNotSupported", f, s.caps[f].Note, err)
	}
	if ids := s.list(t, rt, tag, gantry.ListOptions{All: true}); len(ids) != 0 {
		t.Errorf("a refused Create left containers %q", ids)
	}
}

// specAccepted checks a supported Spec feature: Create keeps it, and the
// container runs; where the suite can observe the feature from a script,
// and the harness's environment can show it, it does.
func (s *suite) specAccepted(t *testing.T, f gantry.Feature) {
	rt := s.runtime(t)
	script, want, code, signal := "echo ok", "ok", 0, ""
	// For a feature whose effect the environment cannot show, the script
	// needs nothing of it.
	unobservable, hidden := s.h.Unobservable[f]
	observe := func(g gantry.Feature) bool { return f == g && !hidden }
	switch {
	case observe(gantry.FeatureUser):
		script, want = "id -u", "65534"
		if s.caps.Level(f) == gantry.Partial {
			// What a partial backend promises at least: naming the user
			// the container runs as anyway.
			want = strings.TrimSpace(s.firstLine(t, rt, "id -u"))
		}
	case observe(gantry.FeatureTty):
		script, want = "test -t 1 && echo on-a-tty", "on-a-tty"
	case observe(gantry.FeatureMounts):
		script = "echo ok > /runtimetest-data/f && cat /runtimetest-data/f"
	case observe(gantry.FeatureTimeout):
		script, want, code, signal = scriptForever, "ready", 143, "SIGTERM"
	case observe(gantry.FeatureSecrets):
		if s.h.SecretName == "" {
			t.Fatalf("secrets are declared %s; set Harness.SecretName and SecretValue so the suite can test them", s.caps.Level(f))
		}
		script, want = `echo "$RUNTIMETEST_SECRET"`, s.h.SecretValue
	}
	spec := s.spec(newTag(), script)
	specFeatures[f](s.h, &spec)
	if observe(gantry.FeatureUser) {
		spec.User = want
	}
	if observe(gantry.FeatureTimeout) {
		spec.Timeout = s.stopTimeout
	}
	c := Create(t, rt, spec)
	got := inspect(t, rt, c.ID)
	if diff := cmp.Diff(spec, got.Spec, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Spec using %q did not round-trip (-want +got):\n%s", f, diff)
	}
	if err := rt.Start(s.ctx(t), c.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := s.wait(t, rt, c.ID, gantry.WaitNotRunning)
	if observe(gantry.FeatureTimeout) && s.caps.Level(f) == gantry.Partial {
		if st.ExitCode == 0 {
			t.Errorf("a run past its Timeout (partial: %s) exited 0", s.caps[f].Note)
		}
	} else {
		wantExit(t, st, code, signal)
	}
	es := s.logs(t, rt, c.ID, gantry.LogsOptions{})
	if len(es) == 0 || strings.TrimSpace(es[0].Line) != want {
		t.Errorf("a container using %q logged %s, want %q first", f, formatEntries(es), want)
	}
	if hidden {
		t.Skipf("%q is accepted, round-trips through Inspect and runs; its effect is not observed, as the harness says: %s", f, unobservable)
	}
}

// operationRefused checks that an operation declared none fails with
// ErrNotSupported and leaves the container as it was.
func (s *suite) operationRefused(t *testing.T, f gantry.Feature) {
	op := refusals[f]
	if op == nil {
		t.Fatalf("the suite has no check for feature %q", f)
	}
	rt := s.runtime(t)
	var c *gantry.Container
	if f == gantry.FeatureStart {
		c = s.create(t, rt, newTag(), scriptForever)
	} else {
		c = s.start(t, rt, newTag(), scriptForever)
	}
	before, err := rt.Inspect(s.ctx(t), c.ID)
	if err != nil && f != gantry.FeatureInspect {
		t.Fatalf("Inspect: %v", err)
	}
	err = op(s.ctx(t), rt, c.ID)
	if !errors.Is(err, gantry.ErrNotSupported) {
		t.Fatalf("%s, declared none (%s): %v, want ErrNotSupported", f, s.caps[f].Note, err)
	}
	if f == gantry.FeatureInspect {
		return
	}
	after := inspect(t, rt, c.ID)
	ignore := cmpopts.IgnoreFields(gantry.State{}, "FinishedAt")
	if diff := cmp.Diff(before, after, ignore, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the refused %s changed the container (-before +after):\n%s", f, diff)
	}
}

// firstLine runs script to completion and returns its first log line.
func (s *suite) firstLine(t *testing.T, rt gantry.Runtime, script string) string {
	t.Helper()
	c := s.start(t, rt, newTag(), script)
	wantExit(t, s.wait(t, rt, c.ID, gantry.WaitNotRunning), 0, "")
	es := s.logs(t, rt, c.ID, gantry.LogsOptions{})
	if len(es) == 0 {
		t.Fatalf("%q logged nothing", script)
	}
	return es[0].Line
}
