package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gantryhq/gantry"
)

// heapPeak samples the live heap until stop is closed and returns the
// highest value seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	res := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				res <- peak
				return
			case <-t.C:
			}
		}
	}()
	return res
}

// slowReader pushes size bytes from a real process through a reader that
// sleeps every slowEvery bytes, and checks every byte and the heap.
func slowReader(t *testing.T, cl *Client, size, slowEvery int64) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	check := newPatternChecker(slowEvery)
	// The heap counts garbage until it is collected; earlier tests' (the
	// held-connection test makes tens of MiB) is not this one's.
	runtime.GC()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{exe}, Env: genEnv(size), Stdout: check})
	close(stop)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	if check.off != size || check.bad >= 0 {
		t.Fatalf("received %d of %d bytes, first wrong byte at %d", check.off, size, check.bad)
	}
	// Generator, agent and client all live in this process's heap but the
	// generator's; the windows are 2 MiB per stream.
	const bound = 64 << 20
	if p := <-peak; p > bound {
		t.Errorf("heap peaked at %d MiB moving %d MiB, want under %d MiB", p>>20, size>>20, bound>>20)
	}
}

func TestSlowReader(t *testing.T) {
	modes(t, Config{}, func(t *testing.T, a *Agent, cl *Client) {
		size := int64(64 << 20)
		if raceEnabled {
			size = 16 << 20
		}
		slowReader(t, cl, size, 256<<10)
	})
}

func TestSlowReader1GiB(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("moves 1 GiB: skipped with -short and under the race detector (TestSlowReader is the small version)")
	}
	a := startAgent(t, Config{})
	slowReader(t, dialForward(t, a), 1<<30, 4<<20)
}

func TestConcurrentSessions(t *testing.T) {
	modes(t, Config{}, func(t *testing.T, a *Agent, cl *Client) {
		const n = 100
		var wg sync.WaitGroup
		var failures atomic.Int32
		for i := range n {
			wg.Go(func() {
				var out, errb bytes.Buffer
				res, err := cl.Exec(context.Background(), gantry.ExecConfig{
					Cmd:    []string{"sh", "-c", `echo "out $0"; echo "err $0" >&2; exit $(($0 % 50))`, strconv.Itoa(i)},
					Stdin:  strings.NewReader(fmt.Sprintf("in %d", i)),
					Stdout: &out, Stderr: &errb,
				})
				if err != nil || res.ExitCode != i%50 || out.String() != fmt.Sprintf("out %d\n", i) || errb.String() != fmt.Sprintf("err %d\n", i) {
					failures.Add(1)
					t.Errorf("session %d: %+v, %v, stdout %q, stderr %q", i, res, err, out.String(), errb.String())
				}
			})
		}
		wg.Wait()
		if failures.Load() != 0 {
			t.Fatalf("%d of %d sessions failed", failures.Load(), n)
		}
	})
}

func TestDroppedConnectionEndsSessions(t *testing.T) {
	modes(t, Config{}, func(t *testing.T, a *Agent, cl *Client) {
		out := &syncBuffer{}
		sess, err := cl.Start(context.Background(), gantry.ExecConfig{
			Cmd: []string{"sh", "-c", "echo $$; exec sleep 1000"}, Stdout: out,
		})
		if err != nil {
			t.Fatal(err)
		}
		waitContains(t, out, "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatal(err)
		}
		cl.Close()
		if _, err := sess.Wait(); !errors.Is(err, gantry.ErrUnavailable) {
			t.Errorf("Wait after the connection dropped: %v, want ErrUnavailable", err)
		}
		waitFor(t, "the session's process to be signalled and reaped", func() bool { return processGone(pid) })
		select {
		case <-a.Exited():
			t.Fatal("the main command exited")
		default:
		}
	})
}

func TestContextCancelEndsSession(t *testing.T) {
	a := startAgent(t, Config{})
	cl := dialForward(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"sh", "-c", "echo $$; exec sleep 1000"}, Stdout: out})
		done <- err
	}()
	waitContains(t, out, "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(out.String()))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec after cancel: %v", err)
	}
	waitFor(t, "the process to end", func() bool { return processGone(pid) })
	// The connection itself is still good.
	if res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
}

// rawController authenticates to a over a bare WebSocket so a test can
// send frames of its own.
func rawController(t *testing.T, url string) *wsTransport {
	c, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	tr := newWSTransport(c, nil)
	if _, err := controllerHandshake(context.Background(), tr, func(string) []byte { return testSecret }, modeForward, binding{dialled: mustEndpoint(t, url)}); err != nil {
		t.Fatal(err)
	}
	return tr
}

// expectClosed reads until the agent closes the connection and fails if
// it answers with anything but the close.
func expectClosed(t *testing.T, tr transport) {
	t.Helper()
	for {
		r, err := tr.next(context.Background())
		if err != nil {
			return
		}
		buf := make([]byte, maxControlPayload)
		f, err := readFrame(r, buf, func(header, io.Reader) error { return nil })
		t.Fatalf("agent answered a bad frame with 0x%02x (%v)", f.typ, err)
	}
}

func TestMalformedFramesCloseOnlyThatConnection(t *testing.T) {
	a := startAgent(t, Config{})
	srv := httptestServer(t, a)
	good := dialForward(t, a)
	long := make([]byte, headerLen+maxControlPayload+1)
	putHeader(long, frameOpen, 1, maxControlPayload+1)
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"short header", []byte{frameOpen, 0, 0}},
		{"unknown type", []byte{0x7f, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"length mismatch", []byte{frameClose, 0, 0, 0, 1, 0, 0, 0, 4}},
		{"bad open json", append([]byte{frameOpen, 0, 0, 0, 1, 0, 0, 0, 3}, "{{{"...)},
		{"oversize control", long},
		{"data on session 0", append([]byte{frameStdin, 0, 0, 0, 0, 0, 0, 0, 1}, 'x')},
		{"frame for the controller", []byte{frameExit, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := rawController(t, wsURL(srv))
			defer tr.close(false)
			// The agent may close before an oversize write completes.
			tr.write(context.Background(), tc.msg)
			expectClosed(t, tr)
		})
	}
	// A text message and an unauthenticated OPEN are refused too.
	c, _, err := websocket.Dial(context.Background(), wsURL(srv), &websocket.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	tr := newWSTransport(c, nil)
	if _, err := tr.next(context.Background()); err != nil { // HELLO
		t.Fatal(err)
	}
	open, _ := encodeControl(&frame{header: header{typ: frameOpen, session: 1}, open: &openRequest{Kind: "exec", Cmd: []string{"true"}, Window: MinWindow}})
	tr.write(context.Background(), open)
	expectClosed(t, tr)

	select {
	case <-a.Exited():
		t.Fatal("the main command exited")
	default:
	}
	if res, err := good.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec on the good connection = %+v, %v", res, err)
	}
}

func TestReverseReconnects(t *testing.T) {
	a := startAgent(t, Config{ID: "c1"})
	hub, srv := newHub(t)
	connect(t, a, srv)
	ctx := context.Background()
	for i := range 3 {
		cl, err := hub.Client(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"echo", strconv.Itoa(i)}, Stdout: &out})
		if err != nil || res.ExitCode != 0 || out.String() != fmt.Sprintf("%d\n", i) {
			t.Fatalf("round %d: %+v, %v, %q", i, res, err, out.String())
		}
		cl.Close()
		<-cl.Done()
	}
}

func TestTLS(t *testing.T) {
	a := startAgent(t, Config{})
	srv := httptest.NewUnstartedServer(a)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	url := "wss" + strings.TrimPrefix(srv.URL, "https")
	cl, err := Dial(context.Background(), url, testSecret, &DialOptions{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out bytes.Buffer
	if res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{"echo", "tls"}, Stdout: &out}); err != nil || res.ExitCode != 0 || out.String() != "tls\n" {
		t.Fatalf("Exec over TLS = %+v, %v, %q", res, err, out.String())
	}
	// An untrusted certificate is not accepted.
	untrusted := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	if _, err := Dial(context.Background(), url, testSecret, &DialOptions{HTTPClient: untrusted}); !errors.Is(err, gantry.ErrUnavailable) {
		t.Errorf("Dial with an untrusted certificate: %v", err)
	}
	// Plain WebSocket off the machine is refused before any connection.
	if _, err := Dial(context.Background(), "ws://192.0.2.1/agent", testSecret, nil); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Dial ws:// to a remote host: %v", err)
	}
	if err := a.Connect(context.Background(), "ws://192.0.2.1/hub", nil); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("Connect ws:// to a remote host: %v", err)
	}
}
