package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/fake"
)

// runServeEnv, set to a port, makes the test binary an HTTP server on that
// port instead of running tests: a container's command in these tests.
// runReadyAfterEnv is how long /ready answers 503 before it answers 200.
const (
	runServeEnv      = "RUNTIMETEST_SERVE"
	runReadyAfterEnv = "RUNTIMETEST_READY_AFTER"
)

func TestMain(m *testing.M) {
	if port := os.Getenv(runServeEnv); port != "" {
		os.Exit(runServe(port, os.Getenv(runReadyAfterEnv)))
	}
	os.Exit(m.Run())
}

// runServe answers /ready with 503 "starting" until readyAfter has passed,
// then 200 "ready"; /hello with "hello"; anything else 404. It logs
// "listening" once it listens, and a line per request.
func runServe(port, readyAfter string) int {
	wait, err := time.ParseDuration(readyAfter)
	if err != nil {
		wait = 0
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	fmt.Println("listening on", port)
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) < wait {
			fmt.Println("not ready yet")
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	fmt.Fprintln(os.Stderr, http.Serve(ln, mux))
	return 1
}

// runRuntime returns the fake with host processes, and checks, when t
// ends, that every container the helpers made was removed.
func runRuntime(t *testing.T) gantry.Runtime {
	t.Helper()
	rt := fake.New(fake.WithHostProcesses())
	// Registered first, this runs after every cleanup the helpers add.
	t.Cleanup(func() {
		defer rt.Close()
		cs, err := rt.List(context.Background(), gantry.ListOptions{All: true})
		if err != nil {
			t.Errorf("List: %v", err)
		}
		for _, c := range cs {
			t.Errorf("container %s (%s) left behind, %s", c.Name, shortID(c.ID), c.State.Status)
		}
	})
	return rt
}

// unusedPort returns a TCP port nothing listens on now.
func unusedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runServerSpec runs this test binary as the server on port, ready after
// readyAfter.
func runServerSpec(t *testing.T, port int, readyAfter time.Duration) gantry.Spec {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return gantry.Spec{
		Image:      "server",
		Entrypoint: []string{self},
		Env:        []string{runServeEnv + "=" + strconv.Itoa(port), runReadyAfterEnv + "=" + readyAfter.String()},
		Ports:      []gantry.Port{{Port: port}},
	}
}

// runShSpec runs script under sh -c (on this host, with the fake).
func runShSpec(script string) gantry.Spec {
	return gantry.Spec{Image: "busybox", Entrypoint: []string{"sh", "-c"}, Cmd: []string{script}}
}

// httpGet returns the status and body of a GET of url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestRunContainerHTTP(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	SkipUnsupported(t, rt, gantry.FeaturePortForward)
	port := unusedPort(t)
	c := RunContainer(t, rt, runServerSpec(t, port, 300*time.Millisecond),
		WaitingFor(ForHTTP(port, "/ready").WithBodyContaining("ready").WithPollInterval(20*time.Millisecond)))
	if !c.State.Running {
		t.Fatalf("RunContainer returned a container not running: %+v", c.State)
	}
	// The strategy did not return before /ready said so.
	if code, body := httpGet(t, HTTPEndpoint(t, rt, c.ID, port)+"/ready"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("GET /ready after the wait: %d %q, want 200 \"ready\\n\"", code, body)
	}
	logs, err := readLogs(t.Context(), rt, c.ID, gantry.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(formatEntries(logs), "not ready yet") {
		t.Errorf("the server never answered 503 before it was ready; logs: %s", formatEntries(logs))
	}
	base := HTTPEndpoint(t, rt, c.ID, port)
	for range 3 {
		if code, body := httpGet(t, base+"/hello"); code != http.StatusOK || body != "hello\n" {
			t.Errorf("GET /hello: %d %q, want 200 \"hello\\n\"", code, body)
		}
	}
	if _, _, err := net.SplitHostPort(Endpoint(t, rt, c.ID, port)); err != nil {
		t.Errorf("Endpoint is not host:port: %v", err)
	}
}

func TestForListeningPort(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	SkipUnsupported(t, rt, gantry.FeaturePortForward)
	port := unusedPort(t)
	spec := runServerSpec(t, port, 0)
	// The server starts listening only after a pause.
	spec.Entrypoint = []string{"sh", "-c", `sleep 0.3; exec "$0"`, spec.Entrypoint[0]}
	c := RunContainer(t, rt, spec, WaitingFor(ForListeningPort(port).WithPollInterval(20*time.Millisecond)))
	conn, err := gantry.DialPort(t.Context(), rt, c.ID, port)
	if err != nil {
		t.Fatalf("DialPort once ForListeningPort returned: %v", err)
	}
	conn.Close()
}

func TestForLogOccurrence(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	c := RunContainer(t, rt, runShSpec(`for i in 1 2 3; do echo "tick $i"; sleep 0.1; done; echo done; sleep 60`),
		WaitingFor(ForLog("tick").WithOccurrence(3)))
	logs, err := readLogs(t.Context(), rt, c.ID, gantry.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(logs, 0); len(got) < 3 || got[2] != "tick 3" {
		t.Errorf("lines once 3 ticks were awaited: %q, want at least tick 1 to 3", got)
	}
}

func TestForLogStopped(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	c := Start(t, rt, runShSpec(`echo tick; echo tick; exit 4`))
	start := time.Now()
	err := ForLog("tick").WithOccurrence(3).WaitUntilReady(t.Context(), rt, c)
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, ErrStopped) {
		t.Fatalf("ForLog(3) on a container that wrote 2 and exited: %v, want a *WaitError with ErrStopped", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the wait took %v: a stopped container should end it at once", time.Since(start))
	}
	for _, want := range []string{`3 log lines containing "tick"`, "2 of 3 such lines", "exit code 4", "stdout: tick"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestForExit(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	c := RunContainer(t, rt, runShSpec(`echo bye; exit 3`), WaitingFor(ForExit(3)))
	if c.State.Running || c.State.ExitCode != 3 {
		t.Errorf("state after ForExit(3): %+v", c.State)
	}
	err := ForExit(0).WaitUntilReady(t.Context(), rt, c)
	if err == nil || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "stdout: bye") {
		t.Errorf("ForExit(0) of a container that exited 3: %v, want the code seen and the last lines", err)
	}
}

func TestForExec(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	SkipUnsupported(t, rt, gantry.FeatureExec)
	flag := filepath.Join(t.TempDir(), "ready")
	c := RunContainer(t, rt, runShSpec(`sleep 0.3; touch `+flag+`; sleep 60`),
		WaitingFor(ForExec("test", "-f", flag).WithPollInterval(20*time.Millisecond)))
	if _, err := os.Stat(flag); err != nil {
		t.Errorf("ForExec returned before its command could pass: %v", err)
	}
	err := ForExec("sh", "-c", "echo nope; exit 2").WithTimeout(300*time.Millisecond).WaitUntilReady(t.Context(), rt, c)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `exit code 2, output "nope"`) {
		t.Errorf("a failing ForExec: %v, want a timeout that quotes the exit code and output", err)
	}
}

func TestForHealthy(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	if l := rt.Capabilities().Level(gantry.FeatureHealthcheck); l < gantry.Full {
		t.Skipf("healthcheck is %v: %s", l, rt.Capabilities()[gantry.FeatureHealthcheck].Note)
	}
	flag := filepath.Join(t.TempDir(), "ready")
	spec := runShSpec(`sleep 0.3; touch ` + flag + `; sleep 60`)
	spec.Healthcheck = &gantry.Healthcheck{Test: []string{"CMD", "test", "-f", flag}, Interval: 50 * time.Millisecond, Retries: 100}
	c := RunContainer(t, rt, spec, WaitingFor(ForHealthy().WithPollInterval(20*time.Millisecond)))
	if c.State.Health == nil || c.State.Health.Status != gantry.HealthHealthy {
		t.Errorf("health after ForHealthy: %+v", c.State.Health)
	}
	plain := Start(t, rt, runShSpec(`sleep 60`))
	if err := ForHealthy().WaitUntilReady(t.Context(), rt, plain); err == nil || !strings.Contains(err.Error(), "no healthcheck") {
		t.Errorf("ForHealthy of a container without a healthcheck: %v, want an error saying so", err)
	}
}

func TestForAll(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	SkipUnsupported(t, rt, gantry.FeaturePortForward)
	port := unusedPort(t)
	c := RunContainer(t, rt, runServerSpec(t, port, 200*time.Millisecond),
		WaitingFor(ForLog("listening on")),
		WaitingFor(ForAll(ForListeningPort(port), ForHTTP(port, "ready").WithStatus(http.StatusOK))))
	if code, _ := httpGet(t, HTTPEndpoint(t, rt, c.ID, port)+"/ready"); code != http.StatusOK {
		t.Errorf("GET /ready after ForAll: %d, want 200", code)
	}
}

func TestWaitTimeoutError(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	SkipUnsupported(t, rt, gantry.FeaturePortForward)
	port := unusedPort(t)
	// Ready only after an hour: /ready answers 503 throughout.
	spec := runServerSpec(t, port, time.Hour)
	w := ForAll(
		ForLog("listening on"),
		ForHTTP(port, "/ready").WithTimeout(500*time.Millisecond).WithPollInterval(200*time.Millisecond),
	)
	rec := &recorder{TB: t}
	start := time.Now()
	rec.run(func() { RunContainer(rec, rt, spec, WaitingFor(w)) })
	took := time.Since(start)
	rec.cleanup()
	if took > 20*time.Second {
		t.Errorf("RunContainer took %v to give up on a 500ms timeout", took)
	}
	msg := rec.fatal
	for _, want := range []string{
		"not ready: waiting for HTTP GET /ready on port " + strconv.Itoa(port) + " answering a 2xx status",
		"part of all of [a log line containing \"listening on\"; HTTP GET /ready",
		"timed out after 500ms",
		`last saw: status 503, body "starting\n"`,
		"stdout: not ready yet",
		"stdout: listening on " + strconv.Itoa(port),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("RunContainer's failure %q does not say %q", msg, want)
		}
	}
	if strings.HasSuffix(msg, "context deadline exceeded") {
		t.Errorf("RunContainer's failure ends in a bare deadline: %q", msg)
	}
}

func TestForHTTPStopped(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	SkipUnsupported(t, rt, gantry.FeaturePortForward)
	c := Start(t, rt, runShSpec(`echo cannot runServe >&2; exit 1`))
	start := time.Now()
	err := ForHTTP(unusedPort(t), "/").WaitUntilReady(t.Context(), rt, c)
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "exit code 1") || !strings.Contains(err.Error(), "stderr: cannot runServe") {
		t.Errorf("ForHTTP on a container that exited 1: %v, want ErrStopped with the code and its lines", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the wait took %v: a stopped container should end it at once", time.Since(start))
	}
}

func TestWaitErrorText(t *testing.T) {
	err := &WaitError{
		ID:       "0123456789abcdef",
		Name:     "web",
		Strategy: "TCP port 5432 accepting connections",
		Within:   []string{"all of [x]", "all of [y]"},
		Seen:     "connection refused",
		Err:      &waitTimeoutError{d: 2 * time.Second},
	}
	want := "runtimetest: container web (0123456789ab) not ready: waiting for TCP port 5432 accepting connections, part of all of [y], part of all of [x]: timed out after 2s; last saw: connection refused; it wrote no lines"
	if err.Error() != want {
		t.Errorf("Error():\n got %s\nwant %s", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("a timeout's WaitError is not a context.DeadlineExceeded")
	}
}

// withURL is a Runtime whose containers are served at url, as a backend
// that publishes a port at a URL would have them; it cannot dial ports.
type withURL struct {
	gantry.Runtime
	url string
}

func (w withURL) Inspect(ctx context.Context, id string) (*gantry.Container, error) {
	c, err := w.Runtime.Inspect(ctx, id)
	if err == nil {
		c.URL = w.url
	}
	return c, err
}

func TestForHTTPViaURL(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || hits.Add(1) < 3 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "fine")
	}))
	defer srv.Close()
	rt := withURL{Runtime: runRuntime(t), url: srv.URL + "/"}
	c := Start(t, rt, runShSpec(`sleep 60`))
	for _, w := range []*HTTPStrategy{ForHTTP(8080, "/health"), ForHTTP(8080, "health").ViaURL()} {
		hits.Store(0)
		if err := w.WithBodyContaining("fine").WithPollInterval(10*time.Millisecond).WaitUntilReady(t.Context(), rt, c); err != nil {
			t.Errorf("%s: %v", w, err)
		}
		if n := hits.Load(); n != 3 {
			t.Errorf("%s: the URL got %d requests, want 3", w, n)
		}
	}
}

func TestForHTTPUnreachable(t *testing.T) {
	t.Parallel()
	// Without PortDialer and without a URL, nothing reaches the port.
	rt := struct{ gantry.Runtime }{runRuntime(t)}
	c := Start(t, rt, runShSpec(`sleep 60`))
	start := time.Now()
	err := ForHTTP(8080, "/").WaitUntilReady(t.Context(), rt, c)
	if !errors.Is(err, gantry.ErrNotSupported) || !strings.Contains(err.Error(), "port 8080 is out of reach") {
		t.Errorf("ForHTTP with no way to the port: %v, want ErrNotSupported saying so", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the wait took %v: an unreachable port should end it at once", time.Since(start))
	}
}

func TestForLogAcrossRestarts(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	SkipUnsupported(t, rt, gantry.FeatureRestartPolicy)
	// Each run writes one line and fails; the restart policy starts the
	// next, so the third line comes from the third run.
	spec := runShSpec(`echo tick; exit 1`)
	spec.RestartPolicy = gantry.RestartPolicy{Name: gantry.RestartOnFailure}
	c := RunContainer(t, rt, spec, WaitingFor(ForLog("tick").WithOccurrence(3).WithPollInterval(10*time.Millisecond)))
	if c.RestartCount < 2 {
		t.Errorf("RestartCount %d once three runs' lines were awaited, want at least 2", c.RestartCount)
	}
}

// noFollow is a Runtime that declares it cannot follow logs, so ForLog
// polls them.
type noFollow struct{ gantry.Runtime }

func (n noFollow) Capabilities() gantry.Capabilities {
	c := n.Runtime.Capabilities()
	c[gantry.FeatureLogsFollow] = gantry.None.With("declared none for the test")
	return c
}

func TestForLogPolling(t *testing.T) {
	t.Parallel()
	rt := noFollow{runRuntime(t)}
	c := RunContainer(t, rt, runShSpec(`for i in 1 2 3; do echo "tick $i"; sleep 0.1; done; sleep 60`),
		WaitingFor(ForLog("tick").WithOccurrence(3).WithPollInterval(20*time.Millisecond)))
	logs, err := readLogs(t.Context(), rt, c.ID, gantry.LogsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(logs, 0); len(got) < 3 || got[2] != "tick 3" {
		t.Errorf("lines once 3 ticks were polled for: %q, want tick 1 to 3", got)
	}
	stopped := Start(t, rt, runShSpec(`echo tick; exit 5`))
	err = ForLog("tick").WithOccurrence(2).WithPollInterval(20*time.Millisecond).WaitUntilReady(t.Context(), rt, stopped)
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "1 of 2 such lines") || !strings.Contains(err.Error(), "exit code 5") {
		t.Errorf("polling ForLog(2) of a container that wrote 1 and exited 5: %v", err)
	}
}

// refusedNotFound is the fake whose DialPort reports a port nothing
// listens on as ErrNotFound, as cloudrun's agent does.
type refusedNotFound struct{ *fake.Runtime }

func (r refusedNotFound) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	conn, err := r.Runtime.DialPort(ctx, id, port)
	if errors.Is(err, gantry.ErrUnavailable) {
		return nil, fmt.Errorf("%w: connection refused", gantry.ErrNotFound)
	}
	return conn, err
}

func TestForListeningPortNotFound(t *testing.T) {
	t.Parallel()
	base := runRuntime(t)
	SkipUnsupported(t, base, gantry.FeaturePortForward)
	rt := refusedNotFound{base.(*fake.Runtime)}
	port := unusedPort(t)
	spec := runServerSpec(t, port, 0)
	spec.Entrypoint = []string{"sh", "-c", `sleep 0.3; exec "$0"`, spec.Entrypoint[0]}
	c := RunContainer(t, rt, spec, WaitingFor(ForAll(
		ForListeningPort(port).WithPollInterval(20*time.Millisecond),
		ForHTTP(port, "/hello").WithPollInterval(20*time.Millisecond),
	)))
	if !c.State.Running {
		t.Errorf("state once listening: %+v", c.State)
	}
}

func TestEndpointUnsupported(t *testing.T) {
	t.Parallel()
	rt := struct{ gantry.Runtime }{runRuntime(t)}
	c := Start(t, rt, runShSpec(`sleep 60`))
	rec := &recorder{TB: t}
	rec.run(func() { Endpoint(rec, rt, c.ID, 8080) })
	rec.cleanup()
	if !strings.Contains(rec.fatal, "not supported") || !strings.Contains(rec.fatal, string(gantry.FeaturePortForward)) {
		t.Errorf("Endpoint on a backend that cannot dial ports failed with %q, want ErrNotSupported and the capability", rec.fatal)
	}
}

// bareStrategy is a strategy of a test's own that fails with a bare
// error, once the container has written "started".
type bareStrategy struct{}

func (bareStrategy) WaitUntilReady(ctx context.Context, rt gantry.Runtime, c *gantry.Container) error {
	if _, err := WaitForLog(ctx, rt, c.ID, "started"); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

func (bareStrategy) String() string { return "the test's own condition" }

func TestRunContainerBareError(t *testing.T) {
	t.Parallel()
	rt := runRuntime(t)
	rec := &recorder{TB: t}
	rec.run(func() { RunContainer(rec, rt, runShSpec(`echo started; sleep 60`), WaitingFor(bareStrategy{})) })
	rec.cleanup()
	for _, want := range []string{"not ready: waiting for the test's own condition: context deadline exceeded", "stdout: started"} {
		if !strings.Contains(rec.fatal, want) {
			t.Errorf("RunContainer's failure %q does not say %q", rec.fatal, want)
		}
	}
}
