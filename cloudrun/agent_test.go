package cloudrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/agent"
	"github.com/gantryhq/gantry/gcptest"
	"github.com/gantryhq/gantry/internal/naming"
	"github.com/gantryhq/gantry/internal/testregistry"
	"github.com/gantryhq/gantry/runtimetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// relayToken is the bearer token the test relay asks of clients, as a
// Cloud Run service asks its invokers for an ID token.
const relayToken = "test-id-token"

// agentWorld is what a Runtime with the agent needs on the emulator: a
// registry holding the agent image and the test image, a relay, and an
// emulator that pulls from that registry.
type agentWorld struct {
	srv   *gcptest.Server
	relay *httptest.Server
	// image is the test image: no ENTRYPOINT, CMD ["sh"], as busybox.
	image string
	agent AgentConfig
}

// newAgentWorld starts it all; everything ends with t. opts are more
// emulator options (it is relaxed unless they say otherwise).
func newAgentWorld(t testing.TB, opts ...gcptest.Option) *agentWorld {
	t.Helper()
	host := testregistry.Start(t)
	testregistry.PushImage(t, host, "library/busybox", testregistry.Image{Cmd: []string{"sh"}})
	// Named by tag, as the suite asks: it spells the image several ways.
	w := &agentWorld{image: host + "/library/busybox"}
	relay, err := agent.NewRelay(&agent.RelayOptions{Authorize: func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer "+relayToken {
			return errors.New("no valid ID token")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	w.relay = httptest.NewServer(relay)
	t.Cleanup(w.relay.Close)
	w.agent = AgentConfig{
		Image:   testregistry.AgentImage(t, host),
		Relay:   w.relay.URL,
		IDToken: func(context.Context, string) (string, error) { return relayToken, nil },
	}
	w.srv = newServer(t, append([]gcptest.Option{gcptest.WithImageRegistry(host)}, opts...)...)
	return w
}

// runtime returns a Runtime with the agent on the world's emulator.
func (w *agentWorld) runtime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	a := w.agent
	cfg.Agent = &a
	return newRuntime(t, w.srv, cfg)
}

// TestConformanceWithAgent runs the conformance suite against cloudrun
// with the agent delivered by the backend (the test image has none), on
// the strict emulator: exec, attach, signals and stop timeouts included.
func TestConformanceWithAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs real processes for minutes; skipped with -short")
	}
	w := newAgentWorld(t,
		gcptest.WithStrict(),
		gcptest.WithStopGracePeriod(conformanceGrace),
		gcptest.WithSecret(conformanceSecret, "1", conformanceSecretValue),
	)
	runtimetest.Run(t, runtimetest.Harness{
		NewRuntime: func(ctx context.Context, t *testing.T) (gantry.Runtime, error) {
			a := w.agent
			return New(ctx, Config{Project: "rtt-" + naming.RandomHex(5), Region: region, PollInterval: testPoll, LogGrace: strictGrace, Budget: googleQuota, Agent: &a}, w.srv.ClientOptions()...)
		},
		Latency:     2 * strictGrace,
		Image:       w.image,
		SecretName:  conformanceSecret,
		SecretValue: conformanceSecretValue,
		Unobservable: map[gantry.Feature]string{
			gantry.FeatureMounts: "the emulator runs host processes, which see the host's file system",
		},
	})
}

// TestAgentExecAndSignals: on a running container, exec gives exact exit
// codes and separate streams, Kill delivers any signal to the main
// process, and Stop keeps Docker's timeout.
func TestAgentExecAndSignals(t *testing.T) {
	w := newAgentWorld(t)
	rt := w.runtime(t, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"sh", "-c", `trap 'echo got-usr1' USR1; trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.05; done`}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || out.String() != "out\n" || errb.String() != "err\n" {
		t.Errorf("exec: exit %d, stdout %q, stderr %q; want 3, out, err", res.ExitCode, out.String(), errb.String())
	}
	if err := rt.Kill(ctx, c.ID, "SIGUSR1"); err != nil {
		t.Fatal(err)
	}
	timeout := 5 * time.Second
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 7 {
		t.Errorf("stop: exit %d, want 7 (the TERM trap's)", st.ExitCode)
	}
	lines := byStream(readAll(t, rt, c.ID, gantry.LogsOptions{Stdout: true, Stderr: true}))
	if got := strings.Join(lines[gantry.Stdout], ","); got != "ready,got-usr1,bye" {
		t.Errorf("stdout %q, want ready,got-usr1,bye", got)
	}
}

// TestAgentMissingCommand: a command that cannot start exits 127 under
// the agent, as under an init.
func TestAgentMissingCommand(t *testing.T) {
	w := newAgentWorld(t)
	rt := w.runtime(t, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Entrypoint: []string{"/no/such/program"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 127 {
		t.Errorf("exit %d, want 127", st.ExitCode)
	}
}

// TestAgentFollowEndsOnRecord: a follow of a container that prints 10,000
// lines and exits ends once they are all in, on an emulator with
// ingestion delay: its LogGrace is an hour, so a follow that ended did
// not wait it out.
func TestAgentFollowEndsOnRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 lines through the strict emulator; skipped with -short")
	}
	w := newAgentWorld(t, gcptest.WithStrict())
	rt := w.runtime(t, Config{LogGrace: time.Hour, Budget: googleQuota, PollInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"sh", "-c", "i=0; while [ $i -lt 10000 ]; do echo line-$i; i=$((i+1)); done"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Stdout: true, Stderr: true, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d lines: %v", n, err)
		}
		if want := fmt.Sprintf("line-%d", n); e.Line != want || e.Stream != gantry.Stdout {
			t.Fatalf("line %d: %v %q, want stdout %q", n, e.Stream, e.Line, want)
		}
		n++
	}
	ended := time.Now()
	if n != 10000 {
		t.Fatalf("%d lines, want 10000", n)
	}
	if got, err := rt.Inspect(ctx, c.ID); err == nil {
		t.Logf("the follow ended %v after the container finished (ingestion delay up to 2 s, poll interval 100 ms, LogGrace an hour)", ended.Sub(got.State.FinishedAt).Round(time.Millisecond))
	}
}

// TestRelayRefusesStrangers: an exec through the relay with no token, or
// with the wrong secret, gets nothing.
func TestRelayRefusesStrangers(t *testing.T) {
	w := newAgentWorld(t)
	rt := w.runtime(t, Config{})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"sh", "-c", forever}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	defer rt.Remove(context.WithoutCancel(ctx), c.ID, gantry.RemoveOptions{Force: true})
	// The genuine client reaches it.
	var out bytes.Buffer
	if _, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"echo", "hi"}, Stdout: &out}); err != nil || out.String() != "hi\n" {
		t.Fatalf("exec: %v, %q", err, out.String())
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// No token: refused by the relay before any upgrade.
	if _, err := agent.DialRelay(short, w.relay.URL, c.ID, []byte("whatever-secret-16"), nil); err == nil {
		t.Error("a client without a token reached the agent")
	}
	// A token but the wrong secret: the agent refuses the handshake.
	hdr := http.Header{"Authorization": {"Bearer " + relayToken}}
	if cl, err := agent.DialRelay(short, w.relay.URL, c.ID, []byte("not-the-secret-0123456789"), &agent.DialOptions{HTTPHeader: hdr}); err == nil {
		cl.Close()
		t.Error("a client with the wrong secret reached the agent")
	}
	// The genuine client still does.
	out.Reset()
	if _, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"echo", "again"}, Stdout: &out}); err != nil || out.String() != "again\n" {
		t.Fatalf("exec after the strangers: %v, %q", err, out.String())
	}
}

// TestRelayDeployedOnDemand: with RelayImage the Runtime deploys the relay
// as a Cloud Run service (IAM on: the agents take ID tokens from the
// metadata server, the Runtime presents its own), reaches the agent
// through it, and another Runtime reaches the same agent from the job
// alone; DeleteRelay removes the service.
func TestRelayDeployedOnDemand(t *testing.T) {
	host := testregistry.Start(t)
	testregistry.PushImage(t, host, "library/busybox", testregistry.Image{Cmd: []string{"sh"}})
	image := host + "/library/busybox"
	srv := newServer(t, gcptest.WithImageRegistry(host))
	agentCfg := AgentConfig{
		Image:      testregistry.AgentImage(t, host),
		RelayImage: testregistry.RelayImage(t, host),
		IDToken:    func(_ context.Context, aud string) (string, error) { return srv.IDToken(aud), nil },
	}
	a := agentCfg
	rt := newRuntime(t, srv, Config{Agent: &a})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, gantry.Spec{Image: image, Cmd: []string{"sh", "-c", forever}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	defer rt.Remove(context.WithoutCancel(ctx), c.ID, gantry.RemoveOptions{Force: true})
	var out bytes.Buffer
	if res, err := rt.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"echo", "via the deployed relay"}, Stdout: &out}); err != nil || res.ExitCode != 0 {
		t.Fatalf("exec: %+v, %v", res, err)
	}
	if out.String() != "via the deployed relay\n" {
		t.Errorf("stdout %q", out.String())
	}

	// The service, as Google's client sees it.
	svcs, err := run.NewServicesClient(ctx, srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer svcs.Close()
	name := "projects/" + project + "/locations/" + region + "/services/" + DefaultRelayService
	svc, err := svcs.GetService(ctx, &runpb.GetServiceRequest{Name: name})
	if err != nil {
		t.Fatalf("the relay service: %v", err)
	}
	if svc.GetLabels()["managed-by"] != "gantry" || svc.GetTemplate().GetContainers()[0].GetImage() != agentCfg.RelayImage {
		t.Errorf("relay service labels %v, image %s", svc.GetLabels(), svc.GetTemplate().GetContainers()[0].GetImage())
	}

	// Another Runtime, with its own configuration, reaches the agent.
	b := agentCfg
	other := newRuntime(t, srv, Config{Agent: &b})
	out.Reset()
	if _, err := other.Exec(ctx, c.ID, gantry.ExecConfig{Cmd: []string{"echo", "again"}, Stdout: &out}); err != nil || out.String() != "again\n" {
		t.Fatalf("exec from another Runtime: %v, %q", err, out.String())
	}

	if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := rt.DeleteRelay(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.GetService(ctx, &runpb.GetServiceRequest{Name: name}); status.Code(err) != codes.NotFound {
		t.Errorf("after DeleteRelay: %v, want NotFound", err)
	}
}

// TestStopFallsBackToCancel: when the agent cannot be reached (here the
// relay is gone), Stop cancels the execution instead, and says so.
func TestStopFallsBackToCancel(t *testing.T) {
	w := newAgentWorld(t)
	core, logs := observer.New(zap.WarnLevel)
	rt := w.runtime(t, Config{Logger: zap.New(core)})
	ctx := testCtx(t)
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"sh", "-c", forever}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	w.relay.CloseClientConnections()
	w.relay.Close()
	timeout := time.Minute
	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	got, err := rt.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Running {
		t.Error("still running after Stop")
	}
	if n := logs.FilterMessageSnippet("cancelling the execution instead").Len(); n != 1 {
		t.Errorf("%d warnings that the stop fell back to a cancel, want 1", n)
	}
}

// TestForgedRecordIsALine: a line a program prints to look like the
// agent's record is a line like any other: returned, counted, and no
// reason to end reading early, on an emulator with ingestion delay (the
// real record, signed with the container's secret, ends the reading; its
// LogGrace is an hour).
func TestForgedRecordIsALine(t *testing.T) {
	w := newAgentWorld(t, gcptest.WithStrict())
	rt := w.runtime(t, Config{LogGrace: time.Hour, Budget: googleQuota, PollInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	forged := `{"message":"gantry-agent: exit 0","logging.googleapis.com/labels":{"gantry-agent-record":"exit"},"gantryAgentRecord":{"v":1,"exitCode":0,"signal":0,"stdoutLines":0,"stderrLines":1}}`
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"sh", "-c", "echo '" + forged + "' >&2; i=0; while [ $i -lt 200 ]; do echo after-$i; i=$((i+1)); done"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Wait(ctx, c.ID, gantry.WaitNotRunning); err != nil {
		t.Fatal(err)
	}
	r, err := rt.Logs(ctx, c.ID, gantry.LogsOptions{Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stdout, stderr int
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Stream == gantry.Stderr {
			stderr++
			if !strings.Contains(e.Line, "gantryAgentRecord") {
				t.Errorf("stderr line %q, want the forged record", e.Line)
			}
		} else {
			stdout++
		}
	}
	if stdout != 200 || stderr != 1 {
		t.Errorf("%d stdout and %d stderr lines, want 200 and 1", stdout, stderr)
	}
}

// TestAgentDialPort: a TCP server inside a job's container answers through
// the agent, though the job takes no inbound traffic: a port nothing
// listens on is ErrNotFound, and a forwarded port carries a request and
// its answer.
func TestAgentDialPort(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox is not on this host's PATH; the container's echo server is its nc")
	}
	w := newAgentWorld(t)
	rt := w.runtime(t, Config{})
	ctx := testCtx(t)
	// The container is a host process here: its server gets a free port
	// of this host.
	port := freePort(t)
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"busybox", "nc", "-ll", "-p", strconv.Itoa(port), "-e", "cat"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	defer rt.Remove(context.WithoutCancel(ctx), c.ID, gantry.RemoveOptions{Force: true})
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err = rt.DialPort(ctx, c.ID, port)
		if err == nil || !errors.Is(err, gantry.ErrNotFound) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("echo: %q, %v", buf, err)
	}
	if _, err := rt.DialPort(ctx, c.ID, freePort(t)); !errors.Is(err, gantry.ErrNotFound) {
		t.Errorf("a port nothing listens on: %v, want ErrNotFound", err)
	}
}

// freePort returns a port of this host that nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
