// Package runtimetest is the conformance suite every gantry.Runtime must
// pass, and a few helpers for tests that run containers.
//
// The suite holds each backend to Docker's semantics: state transitions,
// idempotent start and stop, conflicts, lookup by ID, prefix and name, the
// three wait conditions, exact exit codes (128+N for signal N), stop
// timeouts, named signals, logs, exec, list filters, removal, concurrency,
// validation and the optional operations. It also checks the backend's
// capability table against its behaviour: a feature declared none must be
// refused with gantry.ErrNotSupported and leave no trace, and the suite
// skips only what the table declares missing, saying which feature and
// quoting the backend's note. A harness whose environment cannot show a
// Spec feature's effect (mounts, for processes of the host) says so in
// Harness.Unobservable; the suite then skips only that observation.
//
// Every workload is an `sh -c` script in the harness's image, so the suite
// runs unchanged on every backend: the in-memory fake and cloudrun on the
// gcptest emulator run it in this repository. Waits are bounded by
// deadlines that a slow backend can stretch (Harness.Latency), never by
// sleeps that assume speed, and a wait that must precede an event is
// registered first with gantry.RegisterWait. Everything a test creates is
// force-removed when it ends (or when its Runtime is closed, if that comes
// first), so a run against a real cloud leaves nothing behind.
//
// A backend's test calls Run with a harness:
//
//	func TestConformance(t *testing.T) {
//		runtimetest.Run(t, runtimetest.Harness{
//			NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
//				return fake.New(fake.WithHostProcesses()), nil
//			},
//			Image: "busybox",
//		})
//	}
//
// Tests that merely use containers need only the helpers:
//
//	c := runtimetest.Start(t, rt, gantry.Spec{Image: "busybox", Cmd: []string{"sh", "-c", "echo ready; sleep 60"}})
//	runtimetest.RequireLog(t, rt, c.ID, "ready", time.Minute)
//
// RunContainer starts a container and waits until a strategy finds it
// ready, in the style of testcontainers-go: a log line (ForLog), an HTTP
// answer (ForHTTP), a listening port, health, an exit code or an exec
// that succeeds, alone or together (ForAll). A wait that fails names the
// strategy, what it saw last and the container's last lines. Endpoint
// forwards a container's port to this machine, on every backend that can
// dial ports:
//
//	c := runtimetest.RunContainer(t, rt, spec, runtimetest.WaitingFor(runtimetest.ForHTTP(8080, "/health")))
//	resp, err := http.Get(runtimetest.HTTPEndpoint(t, rt, c.ID, 8080) + "/items")
//
// The suite's Serve tests are such a test, on every backend that can dial
// ports: busybox's httpd, and nothing left once the test's cleanups ran.
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// Harness tells the suite how to get a Runtime and how to run workloads on
// it.
type Harness struct {
	// NewRuntime returns a fresh Runtime. The suite calls it once per test
	// (or per group of subtests that share containers) and closes the
	// Runtime when that test ends, after removing its containers.
	NewRuntime func(ctx context.Context, t *testing.T) (gantry.Runtime, error)
	// Image is an image whose /bin/sh and basic utilities (echo, sleep,
	// cat, pwd, kill) run the suite's scripts, and whose busybox (or nc,
	// busybox's, with -e) serves the port tests. Empty means "busybox".
	Image string
	// Latency is how long one operation may take on the backend beyond
	// what a local process needs (a second or two for a cloud). The suite
	// stretches its deadlines and stop timeouts by it. Zero suits an
	// in-memory backend.
	Latency time.Duration
	// SecretName and SecretValue name a secret the backend can read, and
	// its value, for the test of Spec.Secrets. A backend that declares
	// secrets supported must provide one.
	SecretName  string
	SecretValue string
	// Unobservable names the Spec features whose effect the harness's
	// environment cannot show to a script, each with the reason (an
	// emulator that runs containers as host processes, for example, has
	// no mounts to write to). For such a feature the suite still checks
	// that a spec using it is accepted, runs and round-trips through
	// Inspect; it skips only the observation, quoting the reason. It must
	// not name a feature the environment can show.
	Unobservable map[gantry.Feature]string
}

// labelKey marks every container the suite creates with the ID of the test
// that made it, so that List assertions see only that test's containers
// even when other tests (or other processes) share the backend. Key and
// value satisfy Google Cloud's label rules.
const labelKey = "runtimetest-test"

// suite carries what every test needs.
type suite struct {
	h    Harness
	caps gantry.Capabilities
	// patience bounds one wait for something that should happen soon.
	patience time.Duration
	// stopTimeout is the short positive stop timeout the suite uses.
	stopTimeout time.Duration
}

// Run runs the conformance suite against the Runtimes h makes. It skips
// only what their Capabilities declare unsupported, and the observations
// h.Unobservable names.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewRuntime == nil {
		t.Fatal("runtimetest: Harness.NewRuntime is nil")
	}
	if h.Image == "" {
		h.Image = "busybox"
	}
	for f, why := range h.Unobservable {
		if specFeatures[f] == nil {
			t.Fatalf("runtimetest: Harness.Unobservable names %q, which is no Spec feature", f)
		}
		if strings.TrimSpace(why) == "" {
			t.Fatalf("runtimetest: Harness.Unobservable names %q without a reason", f)
		}
	}
	s := &suite{
		h:           h,
		patience:    30*time.Second + 20*h.Latency,
		stopTimeout: time.Second + 2*h.Latency,
	}
	rt := s.runtime(t)
	s.caps = rt.Capabilities()
	if _, ok := rt.(gantry.WaitRegisterer); !ok {
		t.Fatalf("runtimetest: %T does not implement gantry.WaitRegisterer: the contract needs a wait that can be registered before Start", rt)
	}
	if _, ok := rt.(gantry.BeforeCloser); !ok {
		t.Fatalf("runtimetest: %T does not implement gantry.BeforeCloser: the helpers need it to remove containers when a deferred Close comes before t.Cleanup", rt)
	}

	t.Run("Create", s.testCreate)
	t.Run("Start", s.testStart)
	t.Run("Stop", s.testStop)
	t.Run("Kill", s.testKill)
	t.Run("Remove", s.testRemove)
	t.Run("Wait", s.testWait)
	t.Run("ExitCode", s.testExitCode)
	t.Run("Lookup", s.testLookup)
	t.Run("Logs", s.testLogs)
	t.Run("Exec", s.testExec)
	t.Run("Inspect", s.testInspect)
	t.Run("List", s.testList)
	t.Run("Validate", s.testValidate)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("Capabilities", s.testCapabilities)
	t.Run("Restart", s.testRestart)
	t.Run("Pause", s.testPause)
	t.Run("Rename", s.testRename)
	t.Run("Update", s.testUpdate)
	t.Run("Attach", s.testAttach)
	t.Run("Top", s.testTop)
	t.Run("Stats", s.testStats)
	t.Run("Ports", s.testPorts)
	t.Run("Health", s.testHealth)
	t.Run("RestartPolicy", s.testRestartPolicy)
	t.Run("Helpers", s.testHelpers)
	t.Run("Serve", s.testServe)
	t.Run("DockerDetails", s.testDockerDetails)
	t.Run("Close", s.testClose)
}

// runtime returns a fresh Runtime that is closed when t ends. Because
// cleanups run last-registered first, containers t creates afterwards are
// removed before the Runtime closes.
func (s *suite) runtime(t *testing.T) gantry.Runtime {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.patience)
	defer cancel()
	rt, err := s.h.NewRuntime(ctx, t)
	if err != nil {
		t.Fatalf("Harness.NewRuntime: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt
}

// ctx returns a context bounded by the suite's patience and by t.
func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), s.patience)
	t.Cleanup(cancel)
	return ctx
}

// require skips t unless the backend supports every feature.
func (s *suite) require(t *testing.T, features ...gantry.Feature) {
	t.Helper()
	for _, f := range features {
		if !s.caps.Supported(f) {
			t.Skipf("backend does not support %q (capability none: %s)", f, s.caps[f].Note)
		}
	}
}

// stampSkew is how far apart two of a container's timestamps may be in the
// wrong order. Docker stamps StartedAt after its start call returns, so a
// short container's first log lines, and even its FinishedAt, can carry an
// earlier time (by up to a millisecond, measured on Docker 20.10).
const stampSkew = 50 * time.Millisecond

// stampedBefore reports whether a is earlier than b by more than stampSkew.
func stampedBefore(a, b time.Time) bool { return a.Add(stampSkew).Before(b) }

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newTag returns a fresh label value, one per test, for labelKey.
func newTag() string { return randomHex(6) }

// spec returns a spec that runs script under sh -c, named uniquely and
// labelled with tag, the test's label value.
func (s *suite) spec(tag, script string) gantry.Spec {
	return gantry.Spec{
		Name:       "rtt-" + randomHex(5),
		Image:      s.h.Image,
		Entrypoint: []string{"sh", "-c"},
		Cmd:        []string{script},
		Labels:     map[string]string{labelKey: tag},
	}
}

// The suite's workloads.
const (
	// scriptForever runs until stopped; SIGTERM ends it at once (143).
	scriptForever = `echo ready; while :; do sleep 0.1; done`
	// scriptTrapTerm exits 0 on SIGTERM; it prints ready once the trap is
	// set, so a signal sent after that line is caught.
	scriptTrapTerm = `trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done`
	// scriptIgnoreTerm ignores SIGTERM; only SIGKILL ends it.
	scriptIgnoreTerm = `trap '' TERM; echo ready; while :; do sleep 0.1; done`
	// scriptStopExits7 exits 7 on SIGTERM, so a Stop ends it with the same
	// status on every backend that can stop, whatever its kill and
	// stop-timeout support. Tests of something else (Wait, lookup) end
	// their containers this way.
	scriptStopExits7 = `trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done`
)

// start creates and starts a container running script, labelled with tag,
// and removes it when t ends.
func (s *suite) start(t *testing.T, rt gantry.Runtime, tag, script string) *gantry.Container {
	t.Helper()
	return Start(t, rt, s.spec(tag, script))
}

// startReady starts script and waits for its "ready" line.
func (s *suite) startReady(t *testing.T, rt gantry.Runtime, tag, script string) *gantry.Container {
	t.Helper()
	c := s.start(t, rt, tag, script)
	RequireLog(t, rt, c.ID, "ready", s.patience)
	return c
}

// create creates a container running script without starting it.
func (s *suite) create(t *testing.T, rt gantry.Runtime, tag, script string) *gantry.Container {
	t.Helper()
	return Create(t, rt, s.spec(tag, script))
}

// inspect inspects id and fails t on error.
func inspect(t *testing.T, rt gantry.Runtime, id string) *gantry.Container {
	t.Helper()
	c, err := rt.Inspect(context.Background(), id)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", id, err)
	}
	return c
}

// wantStatus fails t unless id's status is want.
func wantStatus(t *testing.T, rt gantry.Runtime, id string, want gantry.Status) *gantry.Container {
	t.Helper()
	c := inspect(t, rt, id)
	if c.State.Status != want {
		t.Fatalf("container %s: status %q, want %q (state %+v)", id, c.State.Status, want, c.State)
	}
	if c.State.Running != (want == gantry.StatusRunning || want == gantry.StatusPaused) {
		t.Errorf("container %s: status %q but Running is %v", id, c.State.Status, c.State.Running)
	}
	return c
}

// wait waits for cond on id and fails t on error.
func (s *suite) wait(t *testing.T, rt gantry.Runtime, id string, cond gantry.WaitCondition) gantry.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.patience)
	defer cancel()
	st, err := rt.Wait(ctx, id, cond)
	if err != nil {
		t.Fatalf("Wait(%s, %q): %v%s", id, cond, err, lastLines(rt, id))
	}
	return st
}

// wantExit fails t unless st is the exit status of a run that ended with
// code, killed by signal (or not killed, when signal is "").
func wantExit(t *testing.T, st gantry.ExitStatus, code int, signal string) {
	t.Helper()
	if st.ExitCode != code || st.Signal != signal {
		t.Errorf("exit status %+v, want code %d signal %q", st, code, signal)
	}
}

// exited waits for id to stop running and checks that it has exited and
// that Inspect reports the exit status Wait returned, which it returns.
func (s *suite) exited(t *testing.T, rt gantry.Runtime, id string) gantry.ExitStatus {
	t.Helper()
	st := s.wait(t, rt, id, gantry.WaitNotRunning)
	got := wantStatus(t, rt, id, gantry.StatusExited)
	if got.State.ExitCode != st.ExitCode || got.State.Signal != st.Signal {
		t.Errorf("Inspect: exit code %d signal %q, but Wait returned %+v", got.State.ExitCode, got.State.Signal, st)
	}
	if st.Signal != "" {
		if n, err := gantry.ParseSignal(st.Signal); err != nil || st.ExitCode != 128+n {
			t.Errorf("exit status %+v: a container ended by a signal exits with 128 plus its number", st)
		}
	}
	return st
}

// wantKilled checks how Kill ended id. Declared full, Kill delivers
// SIGKILL: 137. Declared partial, it promises that the container ends with
// a non-zero exit code that Wait and Inspect agree on; the note says how.
func (s *suite) wantKilled(t *testing.T, rt gantry.Runtime, id string) {
	t.Helper()
	st := s.exited(t, rt, id)
	if s.caps.Level(gantry.FeatureKill) == gantry.Full {
		wantExit(t, st, 137, "SIGKILL")
		return
	}
	if st.ExitCode == 0 {
		t.Errorf("Kill (partial: %s) ended the container with exit status %+v, want a non-zero exit code", s.caps[gantry.FeatureKill].Note, st)
	}
}

// stop stops id with the given timeout and fails t on error.
func (s *suite) stop(t *testing.T, rt gantry.Runtime, id string, timeout time.Duration) {
	t.Helper()
	if err := rt.Stop(s.ctx(t), id, gantry.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatalf("Stop(%s, %v): %v", id, timeout, err)
	}
}

// readLogs reads every entry Logs returns for opts.
func readLogs(ctx context.Context, rt gantry.Runtime, id string, opts gantry.LogsOptions) ([]gantry.LogEntry, error) {
	r, err := rt.Logs(ctx, id, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []gantry.LogEntry
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// logs returns id's log entries for opts and fails t on error.
func (s *suite) logs(t *testing.T, rt gantry.Runtime, id string, opts gantry.LogsOptions) []gantry.LogEntry {
	t.Helper()
	es, err := readLogs(s.ctx(t), rt, id, opts)
	if err != nil {
		t.Fatalf("Logs(%s, %+v): %v", id, opts, err)
	}
	return es
}

// lines returns the text of es (of every stream when stream is 0).
func lines(es []gantry.LogEntry, stream gantry.Stream) []string {
	var out []string
	for _, e := range es {
		if stream == 0 || e.Stream == stream {
			out = append(out, e.Line)
		}
	}
	return out
}

// wantLines fails t unless got equals want.
func wantLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: lines %q, want %q", what, got, want)
	}
}

// list lists the containers labelled tag with opts, and returns their IDs.
func (s *suite) list(t *testing.T, rt gantry.Runtime, tag string, opts gantry.ListOptions) []string {
	t.Helper()
	opts.Labels = append(slices.Clip(opts.Labels), labelKey+"="+tag)
	cs, err := rt.List(s.ctx(t), opts)
	if err != nil {
		t.Fatalf("List(%+v): %v", opts, err)
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// listErr lists every container of rt labelled tag, in any state, and
// returns their IDs; it reports instead of failing, for callers that run
// outside the test's goroutine.
func (s *suite) listErr(rt gantry.Runtime, tag string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.patience)
	defer cancel()
	cs, err := rt.List(ctx, gantry.ListOptions{All: true, Labels: []string{labelKey + "=" + tag}})
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids, err
}

// lastLines describes the last few log lines of id, for failure messages.
func lastLines(rt gantry.Runtime, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	es, err := readLogs(ctx, rt, id, gantry.LogsOptions{Tail: 5})
	if err != nil || len(es) == 0 {
		return ""
	}
	return "; last lines: " + formatEntries(es)
}

// formatEntries renders entries as "stdout: text" lines for messages.
func formatEntries(es []gantry.LogEntry) string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteString(" | ")
		}
		fmt.Fprintf(&b, "%s: %s", e.Stream, e.Line)
	}
	return b.String()
}

// poll calls f with growing pauses until it reports done or the suite's
// patience runs out; it returns f's last error, if any.
func (s *suite) poll(ctx context.Context, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, s.patience)
	defer cancel()
	pause := 10 * time.Millisecond
	for {
		done, err := f()
		if done {
			return err
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}
