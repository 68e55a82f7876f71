package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
	"github.com/gantryhq/gantry/runtimetest"
)

// The differential tests run one scenario on a real Docker engine and on
// the fake (running host processes) and compare what each observed:
// states, exit codes and signals, log bytes and streams, error classes,
// and the outcomes Docker's stop timeouts promise (who wins between a
// trap and the kill), never wall time. Docker is the reference: a
// difference is the fake's to explain.

// observation is what one scenario saw, as "what: value" lines in the
// order the scenario made them.
type observation []string

func (o *observation) add(what string, value any) {
	*o = append(*o, fmt.Sprintf("%s: %v", what, value))
}

// scenario drives one runtime and records what it saw.
type scenario func(t *testing.T, rt gantry.Runtime, o *observation)

// knownDifferences are the differences the fake has from Docker today,
// by test name, with why. A test listed here logs its difference instead
// of failing, and fails when the difference is gone, so the list only
// shrinks.
var knownDifferences = map[string]string{
	"TestDifferentialErrors": "in host-process mode the fake never looks the image up, so a missing image creates a container; Docker refuses it with not found",
	"TestDifferentialExec": "Docker 20.10 (this engine) completes an exec of a missing command with 126 and runc's message; " +
		"the fake gives 127 and a shorter message, as later Docker does",
}

// differ runs s on Docker and on the fake and fails t with the
// differences.
func differ(t *testing.T, s scenario) {
	t.Helper()
	requireEngine(t)
	t.Parallel()
	var fromDocker, fromFake observation
	t.Run("docker", func(t *testing.T) {
		t.Parallel()
		s(t, newRuntime(t), &fromDocker)
	})
	t.Run("fake", func(t *testing.T) {
		t.Parallel()
		rt := fake.New(fake.WithHostProcesses())
		t.Cleanup(func() { rt.Close() })
		s(t, rt, &fromFake)
	})
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		diff := cmp.Diff(fromDocker, fromFake)
		known, isKnown := knownDifferences[t.Name()]
		switch {
		case diff != "" && isKnown:
			t.Logf("a known difference (%s) (-docker +fake):\n%s", known, diff)
		case diff != "":
			t.Errorf("the fake differs from Docker (-docker +fake):\n%s", diff)
		case isKnown:
			t.Errorf("the known difference %q is gone: remove it from knownDifferences", known)
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func shSpec(script string) gantry.Spec {
	return gantry.Spec{Image: testImage, Entrypoint: []string{"sh", "-c"}, Cmd: []string{script}}
}

// class names the sentinel err satisfies, for comparing errors by class.
func class(err error) string {
	for _, s := range []error{gantry.ErrNotFound, gantry.ErrConflict, gantry.ErrInvalidArgument, gantry.ErrNotSupported,
		gantry.ErrPermissionDenied, gantry.ErrResourceExhausted, gantry.ErrUnavailable, gantry.ErrClosed} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err == nil {
		return "ok"
	}
	return "unclassified: " + err.Error()
}

// status records a container's state.
func status(t *testing.T, rt gantry.Runtime, id string, o *observation, what string) {
	t.Helper()
	c, err := rt.Inspect(ctxFor(t), id)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	s := c.State
	o.add(what, fmt.Sprintf("%s running=%v paused=%v exit=%d signal=%q restarts=%d", s.Status, s.Running, s.Paused, s.ExitCode, s.Signal, c.RestartCount))
}

// exit waits for id to stop and records the exit status.
func exit(t *testing.T, rt gantry.Runtime, id string, o *observation) {
	t.Helper()
	st, err := rt.Wait(ctxFor(t), id, gantry.WaitNotRunning)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	o.add("exit", fmt.Sprintf("%d %q", st.ExitCode, st.Signal))
}

// logs records the container's entries of each stream: text and whether
// a newline ended it, in order. The order between the streams is not
// compared: Docker reads stdout and stderr on two goroutines, so lines
// written close together can be logged in either order, and a line
// without a newline is logged only when its stream closes.
func logs(t *testing.T, rt gantry.Runtime, id string, opts gantry.LogsOptions, o *observation) {
	t.Helper()
	r, err := rt.Logs(ctxFor(t), id, opts)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	defer r.Close()
	got := map[gantry.Stream][]string{}
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		line := e.Line
		if len(line) > 40 {
			line = fmt.Sprintf("%.20s... (%d bytes)", line, len(line))
		}
		got[e.Stream] = append(got[e.Stream], fmt.Sprintf("%q partial=%v", line, e.Partial))
	}
	o.add(fmt.Sprintf("logs %+v stdout", opts), got[gantry.Stdout])
	o.add(fmt.Sprintf("logs %+v stderr", opts), got[gantry.Stderr])
}

func ready(t *testing.T, rt gantry.Runtime, id, line string) {
	t.Helper()
	runtimetest.RequireLog(t, rt, id, line, time.Minute)
}

// readyTwice waits for the second run's "ready" line.
func readyTwice(t *testing.T, rt gantry.Runtime, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		r, err := rt.Logs(ctxFor(t), id, gantry.LogsOptions{Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			e, err := r.Next()
			if err != nil {
				break
			}
			if e.Line == "ready" {
				n++
			}
		}
		r.Close()
		if n >= 2 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("container %s did not write ready twice", id)
}

func TestDifferentialExitCodes(t *testing.T) {
	for _, script := range []string{
		"exit 0", "exit 3", "exit 255", "false",
		"no-such-command", "kill -TERM $$; sleep 5", "kill -KILL $$; sleep 5",
		"kill -USR1 $$; sleep 5",
	} {
		t.Run(script, func(t *testing.T) {
			differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
				c := runtimetest.Start(t, rt, shSpec(script))
				exit(t, rt, c.ID, o)
				status(t, rt, c.ID, o, "after exit")
			})
		})
	}
}

func TestDifferentialEntrypointCannotRun(t *testing.T) {
	for _, ep := range []string{"no-such-command", "/", "/etc/passwd"} {
		t.Run(ep, func(t *testing.T) {
			differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
				c := runtimetest.Create(t, rt, gantry.Spec{Image: testImage, Entrypoint: []string{ep}})
				o.add("start", class(rt.Start(ctxFor(t), c.ID)))
				exit(t, rt, c.ID, o)
				status(t, rt, c.ID, o, "after exit")
			})
		})
	}
}

func TestDifferentialStates(t *testing.T) {
	differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
		ctx := ctxFor(t)
		c := runtimetest.Create(t, rt, shSpec(`echo ready; while :; do sleep 0.1; done`))
		status(t, rt, c.ID, o, "created")
		o.add("stop created", class(rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: new(time.Duration(0))})))
		o.add("kill created", class(rt.Kill(ctx, c.ID, "")))
		_, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}})
		o.add("exec created", class(err))
		o.add("pause created", class(gantry.Pause(ctx, rt, c.ID)))
		o.add("start", class(rt.Start(ctx, c.ID)))
		ready(t, rt, c.ID, "ready")
		status(t, rt, c.ID, o, "running")
		o.add("start running", class(rt.Start(ctx, c.ID)))
		o.add("unpause running", class(gantry.Unpause(ctx, rt, c.ID)))
		o.add("remove running", class(rt.Remove(ctx, c.ID, gantry.RemoveOptions{})))
		o.add("pause", class(gantry.Pause(ctx, rt, c.ID)))
		status(t, rt, c.ID, o, "paused")
		o.add("pause paused", class(gantry.Pause(ctx, rt, c.ID)))
		o.add("start paused", class(rt.Start(ctx, c.ID)))
		_, err = rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"true"}})
		o.add("exec paused", class(err))
		o.add("remove paused", class(rt.Remove(ctx, c.ID, gantry.RemoveOptions{})))
		o.add("unpause", class(gantry.Unpause(ctx, rt, c.ID)))
		status(t, rt, c.ID, o, "unpaused")
		o.add("stop", class(rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: new(10 * time.Second)})))
		status(t, rt, c.ID, o, "stopped")
		o.add("stop stopped", class(rt.Stop(ctx, c.ID, gantry.StopOptions{})))
		o.add("kill stopped", class(rt.Kill(ctx, c.ID, "")))
		o.add("start again", class(rt.Start(ctx, c.ID)))
		ready(t, rt, c.ID, "ready")
		o.add("restart", class(gantry.Restart(ctx, rt, c.ID, gantry.StopOptions{Timeout: new(time.Duration(0))})))
		status(t, rt, c.ID, o, "restarted")
		o.add("kill", class(rt.Kill(ctx, c.ID, "")))
		exit(t, rt, c.ID, o)
		o.add("remove", class(rt.Remove(ctx, c.ID, gantry.RemoveOptions{})))
		_, err = rt.Inspect(ctx, c.ID)
		o.add("inspect removed", class(err))
		o.add("remove removed", class(rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true})))
	})
}

func TestDifferentialErrors(t *testing.T) {
	differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
		ctx := ctxFor(t)
		spec := shSpec("exit 0")
		spec.Name = "diff-" + fmt.Sprint(time.Now().UnixNano())
		a := runtimetest.Create(t, rt, spec)
		_, err := rt.Create(ctx, spec)
		o.add("duplicate name", class(err))
		b := runtimetest.Create(t, rt, shSpec("exit 0"))
		o.add("rename to a name in use", class(gantry.Rename(ctx, rt, b.ID, a.Name)))
		o.add("rename to a bad name", class(gantry.Rename(ctx, rt, b.ID, "-bad")))
		o.add("kill with a bad signal", class(rt.Kill(ctx, a.ID, "SIGNOPE")))
		_, err = rt.Inspect(ctx, "/"+a.Name)
		o.add("inspect /name", class(err))
		_, err = rt.Inspect(ctx, "no-such-container-diff")
		o.add("inspect missing", class(err))
		_, err = rt.Logs(ctx, a.ID, gantry.LogsOptions{Tail: -2})
		o.add("logs tail -2", class(err))
		_, err = rt.Wait(ctx, a.ID, "sideways")
		o.add("wait sideways", class(err))
		missing := gantry.Spec{Image: "gantry-test/no-such-image:1", Cmd: []string{"true"}}
		_, err = rt.Create(ctx, missing)
		o.add("missing image", class(err))
	})
}

// TestDifferentialStopTimeouts checks what a stop timeout decides: whether
// the trap or the SIGKILL ends the run.
func TestDifferentialStopTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("each scenario waits out a trap or a stop timeout of seconds; skipped with -short")
	}
	for _, tc := range []struct {
		name    string
		script  string
		timeout time.Duration
	}{
		{"ZeroKillsBeforeTheTrapEnds", `trap 'sleep 2; echo trapped; exit 0' TERM; echo ready; while :; do sleep 0.1; done`, 0},
		{"PositiveLetsTheTrapEnd", `trap 'echo trapped; exit 0' TERM; echo ready; while :; do sleep 0.1; done`, 10 * time.Second},
		{"PositiveThenKill", `trap '' TERM; echo ready; while :; do sleep 0.1; done`, time.Second},
		{"NegativeWaits", `trap 'sleep 2; echo trapped; exit 7' TERM; echo ready; while :; do sleep 0.1; done`, -1},
		{"Untrapped", `echo ready; while :; do sleep 0.1; done`, 10 * time.Second},
		{"ChildNotSignalled", `sh -c 'trap "echo child got TERM" TERM; while :; do sleep 0.1; done' & echo ready; wait`, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
				c := runtimetest.Start(t, rt, shSpec(tc.script))
				ready(t, rt, c.ID, "ready")
				o.add("stop", class(rt.Stop(ctxFor(t), c.ID, gantry.StopOptions{Timeout: &tc.timeout})))
				exit(t, rt, c.ID, o)
				logs(t, rt, c.ID, gantry.LogsOptions{}, o)
			})
		})
	}
}

func TestDifferentialSignals(t *testing.T) {
	differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
		ctx := ctxFor(t)
		spec := shSpec(`trap 'echo got USR1' USR1; trap 'echo got HUP; exit 4' HUP; echo ready; while :; do sleep 0.1; done`)
		spec.StopSignal = "SIGHUP"
		c := runtimetest.Start(t, rt, spec)
		ready(t, rt, c.ID, "ready")
		o.add("kill USR1", class(rt.Kill(ctx, c.ID, "usr1")))
		ready(t, rt, c.ID, "got USR1")
		status(t, rt, c.ID, o, "after USR1")
		o.add("stop with the spec's signal", class(rt.Stop(ctx, c.ID, gantry.StopOptions{})))
		exit(t, rt, c.ID, o)
		o.add("start", class(rt.Start(ctx, c.ID)))
		readyTwice(t, rt, c.ID)
		o.add("kill 9", class(rt.Kill(ctx, c.ID, "9")))
		exit(t, rt, c.ID, o)
		logs(t, rt, c.ID, gantry.LogsOptions{}, o)
	})
}

func TestDifferentialLogs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		opts   []gantry.LogsOptions
	}{
		{"Streams", `echo o1; echo e1 >&2; echo o2; echo e2 >&2`, []gantry.LogsOptions{{}, {Stdout: true}, {Stderr: true}}},
		{"NoNewline", `printf 'a\n\tb  c\r\n'; printf 'ünï' >&2; sleep 0.1; printf 'last'`, []gantry.LogsOptions{{}}},
		{"Empty", `true`, []gantry.LogsOptions{{}, {Tail: 3}}},
		{"LongLine", `head -c 40000 /dev/zero | tr '\0' x; echo; echo after`, []gantry.LogsOptions{{}, {Tail: 2}}},
		{"TailBeforeStream", `echo o1; sleep 0.1; echo e1 >&2; sleep 0.1; echo o2; sleep 0.1; echo e2 >&2; sleep 0.1; echo e3 >&2; sleep 0.1; echo o3`,
			[]gantry.LogsOptions{{Tail: 2, Stderr: true}, {Tail: 3, Stdout: true}, {Tail: gantry.TailNone}, {Tail: 100}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
				c := runtimetest.Start(t, rt, shSpec(tc.script))
				exit(t, rt, c.ID, o)
				for _, opts := range tc.opts {
					logs(t, rt, c.ID, opts, o)
				}
				r, err := rt.Logs(ctxFor(t), c.ID, gantry.LogsOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var stdout, stderr bytes.Buffer
				if err := gantry.CopyLogs(&stdout, &stderr, r); err != nil {
					t.Fatal(err)
				}
				o.add("stdout bytes", len(stdout.Bytes()))
				o.add("stderr bytes", len(stderr.Bytes()))
				o.add("stdout tail", fmt.Sprintf("%q", tail(stdout.String())))
				o.add("stderr tail", fmt.Sprintf("%q", tail(stderr.String())))
			})
		})
	}
}

func tail(s string) string { return s[max(0, len(s)-20):] }

// TestDifferentialLogsAcrossRuns checks that logs span every run, and that
// a run's times are ordered after the one before.
func TestDifferentialLogsAcrossRuns(t *testing.T) {
	differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
		// Docker does not keep the order between stdout and stderr of
		// lines written together, and the tail spans both: a pause keeps
		// the order the tail depends on.
		c := runtimetest.Start(t, rt, shSpec(`echo run; sleep 0.1; echo err >&2; exit 2`))
		exit(t, rt, c.ID, o)
		if err := rt.Start(ctxFor(t), c.ID); err != nil {
			t.Fatal(err)
		}
		exit(t, rt, c.ID, o)
		status(t, rt, c.ID, o, "after two runs")
		logs(t, rt, c.ID, gantry.LogsOptions{}, o)
		logs(t, rt, c.ID, gantry.LogsOptions{Tail: 3}, o)
	})
}

func TestDifferentialExec(t *testing.T) {
	differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
		spec := shSpec(`echo ready; while :; do sleep 0.1; done`)
		spec.Env = []string{"FROM_SPEC=1"}
		c := runtimetest.Start(t, rt, spec)
		ready(t, rt, c.ID, "ready")
		for _, cfg := range []gantry.ExecConfig{
			{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 5"}},
			{Cmd: []string{"sh", "-c", `echo "$FROM_SPEC $FROM_EXEC"; pwd`}, Env: []string{"FROM_EXEC=2"}},
			{Cmd: []string{"pwd"}, WorkingDir: "/tmp"},
			{Cmd: []string{"sh", "-c", "kill -KILL $$"}},
			{Cmd: []string{"cat"}, Stdin: strings.NewReader("in\nput")},
			{Cmd: []string{"no-such-command"}},
			{Cmd: []string{"sh", "-c", "test -t 1 && echo tty; echo to-stderr >&2"}, Tty: true},
		} {
			var stdout, stderr bytes.Buffer
			cfg.Stdout, cfg.Stderr = &stdout, &stderr
			res, err := rt.Exec(ctxFor(t), c.ID, cfg)
			o.add(fmt.Sprintf("exec %q", cfg.Cmd), fmt.Sprintf("%s %d %q stdout=%q stderr=%q", class(err), res.ExitCode, res.Signal, firstLine(stdout.String()), stderr.String()))
		}
		if err := rt.Stop(ctxFor(t), c.ID, gantry.StopOptions{Timeout: new(time.Duration(0))}); err != nil {
			t.Fatal(err)
		}
		logs(t, rt, c.ID, gantry.LogsOptions{}, o)
	})
}

// firstLine cuts output at its first newline with its \r, which a terminal
// adds and the fake's pty adds too.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSuffix(line, "\r")
}

func TestDifferentialWaits(t *testing.T) {
	differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
		ctx := ctxFor(t)
		c := runtimetest.Create(t, rt, shSpec(`echo ready; exit 9`))
		next, err := gantry.RegisterWait(ctx, rt, c.ID, gantry.WaitNextExit)
		if err != nil {
			t.Fatal(err)
		}
		removed, err := gantry.RegisterWait(ctx, rt, c.ID, gantry.WaitRemoved)
		if err != nil {
			t.Fatal(err)
		}
		st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
		o.add("not-running on created", fmt.Sprintf("%+v %s", st, class(err)))
		if err := rt.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		r := <-next
		o.add("next-exit", fmt.Sprintf("%+v %s", r.Status, class(r.Err)))
		pending, err := gantry.RegisterWait(ctx, rt, c.ID, gantry.WaitNextExit)
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
		r = <-pending
		o.add("next-exit ended by removal", fmt.Sprintf("%+v %s", r.Status, class(r.Err)))
		r = <-removed
		o.add("removed", fmt.Sprintf("%+v %s", r.Status, class(r.Err)))
		_, err = rt.Wait(ctx, c.ID, gantry.WaitRemoved)
		o.add("removed after removal", class(err))
	})
}

func TestDifferentialInspect(t *testing.T) {
	differ(t, func(t *testing.T, rt gantry.Runtime, o *observation) {
		spec := shSpec(`pwd; id -u`)
		spec.Labels = map[string]string{"a": "1"}
		c := runtimetest.Start(t, rt, spec)
		exit(t, rt, c.ID, o)
		got, err := rt.Inspect(ctxFor(t), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		o.add("labels", got.Labels)
		o.add("image", got.Image)
		logs(t, rt, c.ID, gantry.LogsOptions{}, o)
	})
}
