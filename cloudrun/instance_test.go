package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/gcptest"
	"google.golang.org/api/iterator"
)

// instanceRegion has Cloud Run instances (region, us-central1, has not).
const instanceRegion = "europe-west4"

// instanceRuntime returns a Runtime with the agent in a region that has
// instances, whose containers are of kind (chosen by the spec when
// empty).
func (w *agentWorld) instanceRuntime(t testing.TB, kind Kind) *Runtime {
	t.Helper()
	a := w.agent
	cfg := Config{Project: project, Region: instanceRegion, Kind: kind, PollInterval: testPoll, LogGrace: testGrace, Budget: unlimited, Agent: &a}
	rt, err := New(context.Background(), cfg, w.srv.ClientOptions()...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// withURLTokens makes the world's IDToken answer for instance URLs with
// the emulator's ID tokens, and for the relay with its own.
func (w *agentWorld) withURLTokens() {
	relay := w.relay.URL
	w.agent.IDToken = func(_ context.Context, audience string) (string, error) {
		if audience == relay {
			return relayToken, nil
		}
		return w.srv.IDToken(audience), nil
	}
}

// httpdSpec is a container serving dir's index.html, made by the script,
// with busybox httpd on port.
func httpdSpec(image string, port int, body string) gantry.Spec {
	script := fmt.Sprintf(`d=$(mktemp -d); printf '%%s' %q > $d/index.html; exec busybox httpd -f -p 127.0.0.1:%d -h $d`, body, port)
	return gantry.Spec{Image: image, Cmd: []string{"sh", "-c", script}, Ports: []gantry.Port{{Port: port}}}
}

// get GETs url with the bearer token, retrying while the server is not up
// yet, and returns the body of a 200.
func get(t *testing.T, url, token string) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return string(b)
		}
		last = resp.Status + ": " + string(b)
	}
	t.Fatalf("GET %s: never answered 200; last: %s", url, last)
	return ""
}

// TestInstanceServes: an HTTP server in an instance answers on
// Container.URL (with an ID token) and through a forwarded port; Stop
// then Start keeps its ID and URL; Remove leaves no instance, as the
// official client sees.
func TestInstanceServes(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox is not on this host's PATH; the container's server is its httpd")
	}
	w := newAgentWorld(t, gcptest.WithStructuredLogs())
	w.withURLTokens()
	rt := w.instanceRuntime(t, KindInstance)
	ctx := testCtx(t)
	port := freePort(t)
	c, err := rt.Create(ctx, httpdSpec(w.image, port, "hello from an instance"))
	if err != nil {
		t.Fatal(err)
	}
	if KindOf(c) != KindInstance || c.URL == "" || c.State.Status != gantry.StatusCreated {
		t.Fatalf("created: kind %q, URL %q, status %q; want an instance with a URL, created", KindOf(c), c.URL, c.State.Status)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	tok, err := rt.IDToken(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, c.URL, tok); got != "hello from an instance" {
		t.Errorf("GET on the URL: %q", got)
	}
	fwd, err := gantry.ForwardPort(ctx, rt, c.ID, port)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, "http://"+fwd.Addr().String()+"/", ""); got != "hello from an instance" {
		t.Errorf("GET through the forwarded port: %q", got)
	}
	fwd.Close()

	if err := rt.Stop(ctx, c.ID, gantry.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	stopped, err := rt.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.State.Status != gantry.StatusExited || stopped.State.ExitCode != 128+15 {
		t.Errorf("after Stop: %+v, want exited by SIGTERM (143)", stopped.State)
	}
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	again, err := rt.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != c.ID || again.URL != c.URL || !again.State.Running {
		t.Errorf("after Stop and Start: ID %s URL %s running %v; want %s, %s, running", again.ID, again.URL, again.State.Running, c.ID, c.URL)
	}
	if got := get(t, c.URL, tok); got != "hello from an instance" {
		t.Errorf("GET on the URL after a restart: %q", got)
	}
	if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	ic, err := run.NewInstancesClient(ctx, w.srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	it := ic.ListInstances(ctx, &runpb.ListInstancesRequest{Parent: "projects/" + project + "/locations/" + instanceRegion})
	for {
		in, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("instance %s is left after Remove", in.GetName())
	}
}

// TestInstanceTCPEcho: a TCP server that is not HTTP answers through a
// forwarded port.
func TestInstanceTCPEcho(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox is not on this host's PATH; the container's echo server is its nc")
	}
	w := newAgentWorld(t, gcptest.WithStructuredLogs())
	rt := w.instanceRuntime(t, KindInstance)
	ctx := testCtx(t)
	port := freePort(t)
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"busybox", "nc", "-ll", "-p", strconv.Itoa(port), "-e", "cat"}, Ports: []gantry.Port{{Port: port}}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Remove(context.WithoutCancel(ctx), c.ID, gantry.RemoveOptions{Force: true})
	if err := rt.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	fwd, err := gantry.ForwardPort(ctx, rt, c.ID, port)
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn, err := net.Dial("tcp", fwd.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "ping\n")
		buf := make([]byte, 5)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _ := io.ReadFull(conn, buf)
		conn.Close()
		if got = string(buf[:n]); got == "ping\n" {
			break
		}
	}
	if got != "ping\n" {
		t.Errorf("echo through the forwarded port: %q", got)
	}
}

// TestInstanceKindChoice: the kind follows the label, Config.Kind and the
// spec; what cannot be an instance says why before any call.
func TestInstanceKindChoice(t *testing.T) {
	w := newAgentWorld(t)
	ctx := testCtx(t)

	jobs := w.runtime(t, Config{})
	_, err := jobs.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"true"}, Ports: []gantry.Port{{Port: 8080}}})
	if !errors.Is(err, gantry.ErrNotSupported) || !strings.Contains(err.Error(), "no instances in region "+region) {
		t.Errorf("ports in %s: %v, want ErrNotSupported naming the region", region, err)
	}

	cfg := Config{Project: project, Region: instanceRegion, PollInterval: testPoll, LogGrace: testGrace, Budget: unlimited}
	plain, err := New(ctx, cfg, w.srv.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, err = plain.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"true"}, RestartPolicy: gantry.RestartPolicy{Name: gantry.RestartAlways}})
	if !errors.Is(err, gantry.ErrNotSupported) || !strings.Contains(err.Error(), "agent") {
		t.Errorf("a restart policy without the agent: %v, want ErrNotSupported naming the agent", err)
	}
	if _, err := New(ctx, Config{Project: project, Region: instanceRegion, Kind: KindInstance}, w.srv.ClientOptions()...); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Kind instance without the agent: %v, want ErrInvalidArgument", err)
	}

	auto := w.instanceRuntime(t, "")
	c, err := auto.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if KindOf(c) != KindJob {
		t.Errorf("a spec with nothing to serve: kind %q, want job", KindOf(c))
	}
	c, err = auto.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"true"}, Labels: map[string]string{KindLabel: "instance"}})
	if err != nil {
		t.Fatal(err)
	}
	if KindOf(c) != KindInstance {
		t.Errorf("with %s=instance: kind %q", KindLabel, KindOf(c))
	}
	if _, err := auto.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"true"}, Labels: map[string]string{KindLabel: "service"}}); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("kind service: %v, want ErrInvalidArgument", err)
	}
	// The same name cannot be a job and an instance.
	if _, err := auto.Create(ctx, gantry.Spec{Name: "both", Image: w.image, Cmd: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := auto.Create(ctx, gantry.Spec{Name: "both", Image: w.image, Cmd: []string{"true"}, Labels: map[string]string{KindLabel: "instance"}}); !errors.Is(err, gantry.ErrConflict) {
		t.Errorf("an instance named as a job: %v, want ErrConflict", err)
	}
	if _, err := auto.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"true"}, Ports: []gantry.Port{{Port: 53, Protocol: "udp"}}}); !errors.Is(err, gantry.ErrNotSupported) {
		t.Errorf("a UDP port: %v, want ErrNotSupported", err)
	}
	if _, err := auto.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"true"}, Timeout: time.Minute, Labels: map[string]string{KindLabel: "instance"}}); !errors.Is(err, gantry.ErrNotSupported) {
		t.Errorf("an instance with a timeout: %v, want ErrNotSupported", err)
	}
	list, err := auto.List(ctx, gantry.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("List: %d containers, want the 3 created", len(list))
	}
	removed, err := auto.Sweep(ctx, SweepOptions{Session: auto.Session()})
	if err != nil || len(removed) != 3 {
		t.Errorf("Sweep: removed %d, %v; want the 3 created", len(removed), err)
	}
}

// TestInstanceCreateFailureLeavesNothing: an instance whose image cannot
// be pulled fails Create, and is deleted again.
func TestInstanceCreateFailureLeavesNothing(t *testing.T) {
	w := newAgentWorld(t)
	rt := w.instanceRuntime(t, KindInstance)
	ctx := testCtx(t)
	host := strings.SplitN(w.image, "/", 2)[0]
	_, err := rt.Create(ctx, gantry.Spec{Image: host + "/library/missing", Entrypoint: []string{"sh"}})
	if err == nil {
		t.Fatal("Create of a missing image: no error")
	}
	list, err := rt.List(ctx, gantry.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("after a failed Create: %d containers left", len(list))
	}
}

// BenchmarkInstanceServe measures a served container on the emulator:
// the time from Start (of a created instance) to the first HTTP answer
// on its URL, and from the port through a forward, with the round trip
// and throughput of a forwarded port beside a direct connection to the
// same server.
func BenchmarkInstanceServe(b *testing.B) {
	if _, err := exec.LookPath("busybox"); err != nil {
		b.Skip("busybox is not on this host's PATH; the container's server is its httpd")
	}
	w := newAgentWorld(b, gcptest.WithStructuredLogs())
	w.withURLTokens()
	rt := w.instanceRuntime(b, KindInstance)
	ctx := context.Background()
	b.Run("start-to-url-answer", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			port := freePort(b)
			c, err := rt.Create(ctx, httpdSpec(w.image, port, "ok"))
			if err != nil {
				b.Fatal(err)
			}
			tok, err := rt.IDToken(ctx, c.URL)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := rt.Start(ctx, c.ID); err != nil {
				b.Fatal(err)
			}
			awaitHTTP(b, c.URL, tok)
			b.StopTimer()
			if err := rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	port := freePort(b)
	c, err := rt.Create(ctx, gantry.Spec{Image: w.image, Cmd: []string{"busybox", "nc", "-ll", "-p", strconv.Itoa(port), "-e", "cat"}, Ports: []gantry.Port{{Port: port}}})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Remove(ctx, c.ID, gantry.RemoveOptions{Force: true})
	if err := rt.Start(ctx, c.ID); err != nil {
		b.Fatal(err)
	}
	fwd, err := gantry.ForwardPort(ctx, rt, c.ID, port)
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Close()
	for _, tc := range []struct{ name, addr string }{
		{"direct", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))},
		{"forwarded", fwd.Addr().String()},
	} {
		b.Run("round-trip/"+tc.name, func(b *testing.B) {
			conn := dialEcho(b, tc.addr)
			defer conn.Close()
			buf := make([]byte, 1)
			for b.Loop() {
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("throughput/"+tc.name, func(b *testing.B) {
			conn := dialEcho(b, tc.addr)
			defer conn.Close()
			chunk := make([]byte, 64<<10)
			b.SetBytes(int64(len(chunk)))
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, conn, int64(b.N)*int64(len(chunk)))
				done <- err
			}()
			for i := 0; i < b.N; i++ {
				if _, err := conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// dialEcho connects to the echo server at addr once it answers.
func dialEcho(b *testing.B, addr string) net.Conn {
	b.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.SetDeadline(time.Now().Add(time.Second))
			_, werr := conn.Write([]byte{'x'})
			buf := make([]byte, 1)
			_, rerr := io.ReadFull(conn, buf)
			conn.SetDeadline(time.Time{})
			if werr == nil && rerr == nil {
				return conn
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			b.Fatalf("the echo server at %s never answered", addr)
		}
	}
}

// awaitHTTP GETs url until it answers 200.
func awaitHTTP(b *testing.B, url, token string) {
	b.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
	}
	b.Fatalf("GET %s never answered 200", url)
}
