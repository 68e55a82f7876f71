package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gantryhq/gantry"
)

// The tests in this file each perform one attack on the agent or on a
// controller, as found when the agent was hardened to face the internet,
// and check that it now does no harm.

// readControlFrame reads the next control frame from tr.
func readControlFrame(tr transport) (frame, error) {
	r, err := tr.next(context.Background())
	if err != nil {
		return frame{}, err
	}
	return readFrame(r, make([]byte, maxControlPayload), func(h header, r io.Reader) error {
		_, err := io.CopyN(io.Discard, r, int64(h.length))
		return err
	})
}

// impostorAgentServer is a forward-mode agent that knows the secret (as
// root in the container can) and answers the first OPEN with script.
func impostorAgentServer(t *testing.T, script func(tr transport, open frame)) string {
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{subprotocol}})
		if err != nil {
			return
		}
		tr := newWSTransport(c, nil)
		defer tr.close(true)
		if agentHandshake(context.Background(), tr, testSecret, modeForward, "", binding{serves: servesLoopback(r)}) != nil {
			return
		}
		playImpostor(tr, script)
	}))
	return wsURL(srv)
}

// impostorAgentConnect dials a Hub as container c1's agent and answers
// the first OPEN with script.
func impostorAgentConnect(t *testing.T, hubURL string, script func(tr transport, open frame)) {
	c, _, err := websocket.Dial(context.Background(), hubURL, &websocket.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	tr := newWSTransport(c, nil)
	t.Cleanup(func() { tr.close(true) })
	if err := agentHandshake(context.Background(), tr, testSecret, modeReverse, "c1", binding{dialled: mustEndpoint(t, hubURL)}); err != nil {
		t.Fatal(err)
	}
	go playImpostor(tr, script)
}

func playImpostor(tr transport, script func(tr transport, open frame)) {
	f, err := readControlFrame(tr)
	if err != nil || f.typ != frameOpen {
		return
	}
	script(tr, f)
	for {
		if _, err := readControlFrame(tr); err != nil {
			return
		}
	}
}

func sendFrame(tr transport, f frame) {
	b, err := encodeControl(&f)
	if err != nil {
		panic(err)
	}
	tr.write(context.Background(), b)
}

// TestExitBeforeStartedDoesNotCrashTheController: an agent that sends
// EXIT before STARTED for a session with input used to make the
// controller dereference the session's nil input credit in a goroutine,
// killing the whole process (for a Hub, every container's controller).
// The controller now treats it as the protocol violation it is: the
// connection closes and the caller gets an error.
func TestExitBeforeStartedDoesNotCrashTheController(t *testing.T) {
	early := func(tr transport, open frame) {
		sendFrame(tr, frame{header: header{typ: frameExit, session: open.session}})
	}
	attach := func(cl *Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := cl.Attach(ctx, gantry.AttachOptions{Stdin: strings.NewReader("input"), Stdout: io.Discard})
		return err
	}
	exec := func(cl *Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"sh"}, Stdin: strings.NewReader("input"), Stdout: io.Discard})
		return err
	}

	t.Run("forward", func(t *testing.T) {
		for _, run := range []func(*Client) error{attach, exec} {
			cl, err := Dial(context.Background(), impostorAgentServer(t, early), testSecret, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := run(cl); !errors.Is(err, gantry.ErrUnavailable) {
				t.Errorf("session answered with EXIT before STARTED: %v, want ErrUnavailable", err)
			}
			cl.Close()
		}
	})

	t.Run("hub", func(t *testing.T) {
		hub, srv := newHub(t)
		for _, run := range []func(*Client) error{attach, exec} {
			impostorAgentConnect(t, wsURL(srv), early)
			cl, err := hub.Client(context.Background(), "c1")
			if err != nil {
				t.Fatal(err)
			}
			if err := run(cl); !errors.Is(err, gantry.ErrUnavailable) {
				t.Errorf("session answered with EXIT before STARTED: %v, want ErrUnavailable", err)
			}
			<-cl.Done()
		}
		// The Hub still serves the container's real agent.
		connect(t, startAgent(t, Config{ID: "c1"}), srv)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			cl, err := hub.Client(ctx, "c1")
			if err != nil {
				t.Fatal(err)
			}
			res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"true"}})
			if errors.Is(err, gantry.ErrUnavailable) {
				continue // the impostor's connection, closing
			}
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("Exec through the Hub after the attack = %+v, %v", res, err)
			}
			break
		}
	})
}

// TestAttachRacingMainExitNeverExitsBeforeStarted: a real agent attaching
// while its main command exits must answer STARTED (then EXIT) or ERROR,
// never EXIT first, or the controller would close the connection.
func TestAttachRacingMainExitNeverExitsBeforeStarted(t *testing.T) {
	for i := range 30 {
		a := startAgent(t, Config{Cmd: []string{"true"}})
		cl := dialForward(t, a)
		res, err := cl.Attach(context.Background(), gantry.AttachOptions{Stdout: io.Discard})
		if err != nil && !errors.Is(err, gantry.ErrConflict) || err == nil && res.ExitCode != 0 {
			t.Fatalf("attach %d racing the main command's exit: %+v, %v; want exit 0 or ErrConflict", i, res, err)
		}
	}
}

// TestRedirectsAreNotFollowed: a redirect from a wss:// URL used to take
// the handshake and the caller's HTTPHeader over plain ws:// to another
// host, around the loopback-only rule. Dial and Connect now follow no
// redirect, so nothing reaches the redirect's target.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var reached atomic.Int64
	target := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
	}))
	var redirected atomic.Int64
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, wsURL(target)+"/agent", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	url := "wss" + strings.TrimPrefix(redirector.URL, "https")
	header := http.Header{"Authorization": {"Bearer identity-token"}}

	_, err := Dial(context.Background(), url, testSecret, &DialOptions{HTTPClient: redirector.Client(), HTTPHeader: header})
	if !errors.Is(err, gantry.ErrUnavailable) || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("Dial of a redirecting URL: %v, want ErrUnavailable naming the redirect", err)
	}

	a := startAgent(t, Config{ID: "c1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Connect(ctx, url, &ConnectOptions{HTTPClient: redirector.Client(), HTTPHeader: header, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	}()
	waitFor(t, "the agent to try the redirecting Hub URL three times", func() bool { return redirected.Load() >= 4 })
	cancel()
	<-done
	if n := reached.Load(); n != 0 {
		t.Errorf("%d requests followed the redirect to plain ws://", n)
	}
}

// acceptPeer upgrades a request to a WebSocket with this package's
// subprotocol, for test servers that play a party of their own.
func acceptPeer(w http.ResponseWriter, r *http.Request) (transport, error) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		return nil, err
	}
	return newWSTransport(c, nil), nil
}

func dialPeer(url string) (transport, error) {
	c, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		return nil, err
	}
	return newWSTransport(c, nil), nil
}

// nextMessage reads one whole message.
func nextMessage(tr transport) ([]byte, error) {
	r, err := tr.next(context.Background())
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// withEndpoint rewrites the endpoint a HELLO or AUTH message names.
func withEndpoint(t *testing.T, msg []byte, endpoint string) []byte {
	f, err := readFrame(bytes.NewReader(msg), make([]byte, maxHandshakePayload), nil)
	if err != nil {
		t.Error(err)
		return msg
	}
	f.endpoint = endpoint
	b, err := encodeControl(&f)
	if err != nil {
		t.Error(err)
	}
	return b
}

// takeOver plays the controller on an agent connection the impostor has
// got past the handshake, and reports whether the agent started a
// process for it.
func takeOver(tr transport) bool {
	sendFrame(tr, frame{header: header{typ: frameOpen, session: 1}, open: &openRequest{Kind: "exec", Cmd: []string{"true"}, Window: MinWindow}})
	f, err := readControlFrame(tr)
	return err == nil && f.typ == frameStarted
}

// relayHandshake copies the three handshake messages between the side
// that dialled (from) and the side the impostor dialled (to), starting
// with the agent's HELLO, which comes from agentSide. rewrite, when set,
// changes the endpoint named in the dialer's message. It reports the
// first failure, or "" when the handshake got through.
func relayHandshake(t *testing.T, agentSide, ctlSide transport, rewrite func([]byte) []byte) string {
	steps := []struct {
		from, to transport
		name     string
	}{{agentSide, ctlSide, "HELLO"}, {ctlSide, agentSide, "AUTH"}, {agentSide, ctlSide, "AUTH_OK"}}
	for _, s := range steps {
		msg, err := nextMessage(s.from)
		if err != nil {
			return "no " + s.name
		}
		if rewrite != nil {
			msg = rewrite(msg)
		}
		s.to.write(context.Background(), msg)
	}
	return ""
}

// TestImpostorCannotRelayTheHandshake: a party that a controller or an
// agent was led to dial (a wrong URL, a DNS takeover, a hostile proxy)
// used to relay the handshake to the real peer and then run commands in
// the container without knowing the secret. The endpoint each side
// dialled is now bound into both proofs: relayed as it is, the endpoint
// is one the real peer does not serve; rewritten, the two sides' proofs
// no longer match.
func TestImpostorCannotRelayTheHandshake(t *testing.T) {
	for _, rewrite := range []bool{false, true} {
		name := map[bool]string{false: "verbatim", true: "rewritten"}[rewrite]

		t.Run("forward/"+name, func(t *testing.T) {
			a := startAgent(t, Config{})
			agentURL := wsURL(httptestServer(t, a))
			outcome := make(chan string, 1)
			impostor := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctl, err := acceptPeer(w, r)
				if err != nil {
					return
				}
				defer ctl.close(true)
				ag, err := dialPeer(agentURL)
				if err != nil {
					outcome <- "could not reach the agent"
					return
				}
				defer ag.close(true)
				var rw func([]byte) []byte
				if rewrite {
					rw = func(msg []byte) []byte {
						if msg[0] == frameAuth {
							return withEndpoint(t, msg, mustEndpoint(t, agentURL))
						}
						return msg
					}
				}
				if failed := relayHandshake(t, ag, ctl, rw); failed != "" {
					outcome <- failed
					return
				}
				if takeOver(ag) {
					outcome <- "took over"
					return
				}
				outcome <- "no session"
			}))
			if _, err := Dial(context.Background(), wsURL(impostor), testSecret, nil); err == nil {
				t.Error("the controller authenticated a relayed agent")
			}
			if got := <-outcome; got != "no AUTH_OK" {
				t.Errorf("impostor relaying %s: %s, want the agent to refuse the relayed AUTH (no AUTH_OK)", name, got)
			}
		})

		t.Run("reverse/"+name, func(t *testing.T) {
			hub, hubSrv := newHub(t)
			hubURL := wsURL(hubSrv)
			outcome := make(chan string, 1)
			impostor := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ag, err := acceptPeer(w, r)
				if err != nil {
					return
				}
				defer ag.close(true)
				h, err := dialPeer(hubURL)
				if err != nil {
					outcome <- "could not reach the hub"
					return
				}
				defer h.close(true)
				var rw func([]byte) []byte
				if rewrite {
					rw = func(msg []byte) []byte {
						if msg[0] == frameHello {
							return withEndpoint(t, msg, mustEndpoint(t, hubURL))
						}
						return msg
					}
				}
				failed := relayHandshake(t, ag, h, rw)
				if failed == "" && takeOver(ag) {
					failed = "took over"
				}
				select {
				case outcome <- failed:
				default:
				}
			}))
			a := startAgent(t, Config{ID: "c1"})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				a.Connect(ctx, wsURL(impostor), &ConnectOptions{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			}()
			got := <-outcome
			cancel()
			<-done
			want := map[bool]string{false: "no AUTH", true: "no AUTH_OK"}[rewrite]
			if got != want {
				t.Errorf("impostor relaying %s: %s, want %s", name, got, want)
			}
			short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancelShort()
			if _, err := hub.Client(short, "c1"); err == nil {
				t.Error("the Hub holds a client for the relayed agent")
			}
		})
	}
}

// wsRelay copies messages between whoever dials it and upstream without
// reading them, as a relay that pairs a controller with an agent does.
// Its URL is known before it starts, so that the side it relays to can be
// configured with it.
type wsRelay struct {
	srv *httptest.Server
	URL string
}

func newRelay(t *testing.T) *wsRelay {
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return &wsRelay{srv: srv, URL: "ws://" + srv.Listener.Addr().String() + "/relay"}
}

func (rl *wsRelay) start(upstream string) {
	rl.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down, err := acceptPeer(w, r)
		if err != nil {
			return
		}
		defer down.close(true)
		up, err := dialPeer(upstream)
		if err != nil {
			return
		}
		defer up.close(true)
		copyMessages := func(from, to transport) {
			for {
				msg, err := nextMessage(from)
				if err != nil || to.write(context.Background(), msg) != nil {
					from.close(true)
					to.close(true)
					return
				}
			}
		}
		go copyMessages(up, down)
		copyMessages(down, up)
	})
	rl.srv.Start()
}

// TestRelayThatBothSidesNameWorks: binding the endpoint leaves room for a
// relay that copies frames without reading them, as long as the side
// that accepts is configured with the relay's URL, the endpoint the
// dialer dials.
func TestRelayThatBothSidesNameWorks(t *testing.T) {
	ctx := context.Background()
	t.Run("forward", func(t *testing.T) {
		relay := newRelay(t)
		a := startAgent(t, Config{Endpoints: []string{relay.URL}})
		agentSrv := httptestServer(t, a)
		relay.start(wsURL(agentSrv))
		cl, err := Dial(ctx, relay.URL, testSecret, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec through the relay = %+v, %v", res, err)
		}
		// With endpoints configured, only they are served.
		if _, err := Dial(ctx, wsURL(agentSrv), testSecret, nil); !errors.Is(err, gantry.ErrPermissionDenied) {
			t.Errorf("Dial of the agent's own address, not configured: %v, want ErrPermissionDenied", err)
		}
	})
	t.Run("reverse", func(t *testing.T) {
		relay := newRelay(t)
		hub := mustHub(t, testSecrets, &HubOptions{Endpoints: []string{relay.URL}})
		hubSrv := httptestServer(t, hub)
		t.Cleanup(func() { hub.Close() })
		relay.start(wsURL(hubSrv))
		connectURL(t, startAgent(t, Config{ID: "c1"}), relay.URL)
		wait, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cl, err := hub.Client(wait, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec through the relay = %+v, %v", res, err)
		}
	})
}

// setExitGrace shortens exitGrace for one test.
func setExitGrace(t *testing.T, d time.Duration) {
	old := exitGrace
	exitGrace = d
	t.Cleanup(func() { exitGrace = old })
}

// stallWriter blocks every write until it is released: a client that
// stopped reading.
type stallWriter struct{ release chan struct{} }

func (w *stallWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// TestStalledAttachDoesNotKeepTheAgentAlive: an attached client that
// stopped reading used to hold the tee, and with it the agent (PID 1 in
// a container), for ever after the main command exited, until SIGKILL.
// Now the agent gives up on output it could not deliver within exitGrace
// of the exit: the client gets an error instead of the exit status, the
// agent's own stdout (the container's log) still gets every byte, and
// the agent is done.
func TestStalledAttachDoesNotKeepTheAgentAlive(t *testing.T) {
	setExitGrace(t, 200*time.Millisecond)
	// More than the client's window, less than that and a pipe: the main
	// command can finish writing and exit with the client stalled.
	const size = defaultWindow + defaultWindow/4
	for _, dial := range []func(testing.TB, *Agent) *Client{dialForward, dialReverse} {
		logs := &countWriter{}
		a := startAgent(t, Config{
			ID:        "c1",
			Cmd:       []string{"sh", "-c", fmt.Sprintf("read x; head -c %d /dev/zero; exit 3", size)},
			OpenStdin: true,
			Stdout:    logs,
		})
		cl := dial(t, a)
		stalled := &stallWriter{release: make(chan struct{})}
		attached := make(chan error, 1)
		go func() {
			_, err := cl.Attach(context.Background(), gantry.AttachOptions{Stdin: strings.NewReader("go\n"), Stdout: stalled})
			attached <- err
		}()
		waitFor(t, "the main command to exit and the agent to be done, with the client stalled", func() bool {
			select {
			case <-a.Exited():
				return true
			default:
				return false
			}
		})
		if res := a.Wait(); res.ExitCode != 3 {
			t.Errorf("main command's exit code %d, want 3", res.ExitCode)
		}
		if n := logs.n.Load(); n != size {
			t.Errorf("the agent's own stdout got %d bytes, want all %d", n, size)
		}
		close(stalled.release)
		if err := <-attached; !errors.Is(err, gantry.ErrResourceExhausted) {
			t.Errorf("the stalled client's attach: %v, want ErrResourceExhausted", err)
		}
	}
}

// TestLeftoverWriterDoesNotKeepTheAgentAlive: a process the main command
// left behind that keeps writing to the inherited stdout used to keep the
// agent reading, and so alive, for ever after the main command exited.
// The agent now stops reading drainGrace after exitGrace.
func TestLeftoverWriterDoesNotKeepTheAgentAlive(t *testing.T) {
	setExitGrace(t, 200*time.Millisecond)
	logs := &syncBuffer{}
	a := startAgent(t, Config{
		Cmd:    []string{"sh", "-c", `sh -c 'echo $$; while :; do echo x; sleep 0.01; done' & exit 0`},
		Stdout: logs,
	})
	waitContains(t, logs, "\n")
	pid, err := strconv.Atoi(strings.SplitN(logs.String(), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	waitFor(t, "the agent to be done with the leftover process still writing", func() bool {
		select {
		case <-a.Exited():
			return true
		default:
			return false
		}
	})
	if processGone(pid) {
		t.Fatal("the leftover process is gone: the test proved nothing")
	}
}

// TestCloseOutlastsExecsThatIgnoreSIGHUP: Close used to return right
// after sending SIGHUP, so a process that ignored it outlived an agent
// that exited next (one not PID 1, whose exit does not take the
// container's processes with it). Close now returns once every exec'd
// process has exited, after SIGKILL if need be.
func TestCloseOutlastsExecsThatIgnoreSIGHUP(t *testing.T) {
	old := killGrace
	killGrace = 100 * time.Millisecond
	t.Cleanup(func() { killGrace = old })
	a := startAgent(t, Config{})
	cl := dialForward(t, a)
	out := &syncBuffer{}
	if _, err := cl.Start(context.Background(), gantry.ExecConfig{
		Cmd: []string{"sh", "-c", `trap "" HUP; echo $$; exec sleep 1000`}, Stdout: out,
	}); err != nil {
		t.Fatal(err)
	}
	waitContains(t, out, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	a.Close()
	if !processGone(pid) {
		t.Error("an exec'd process that ignores SIGHUP outlived Agent.Close")
	}
}

// TestExecHeldOpenByAWritingDaemon: the documentation said a background
// process that inherited an exec's output could not hold the session
// open; one that keeps writing does, as with docker exec, and the
// documentation now says so. A silent one does not.
func TestExecHeldOpenByAWritingDaemon(t *testing.T) {
	a := startAgent(t, Config{})
	cl := dialForward(t, a)
	ctx := context.Background()

	errb := &syncBuffer{}
	res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"sh", "-c", "sleep 1000 & echo $! >&2; exit 4"}, Stderr: errb})
	if err != nil || res.ExitCode != 4 {
		t.Fatalf("exec leaving a silent daemon = %+v, %v; want exit 4", res, err)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(errb.String())); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}

	out, errb := &countWriter{}, &syncBuffer{}
	sess, err := cl.Start(ctx, gantry.ExecConfig{Cmd: []string{"sh", "-c", "yes tick & echo $! $$ >&2; exit 5"}, Stdout: out, Stderr: errb})
	if err != nil {
		t.Fatal(err)
	}
	waitContains(t, errb, "\n")
	var daemon, shell int
	if _, err := fmt.Sscan(errb.String(), &daemon, &shell); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(daemon, syscall.SIGKILL) })
	waitFor(t, "the exec's own process to exit", func() bool { return processGone(shell) })
	ended := make(chan struct{})
	var final gantry.ExecResult
	go func() {
		defer close(ended)
		final, _ = sess.Wait()
	}()
	after := out.n.Load()
	waitFor(t, "another MiB from the daemon", func() bool { return out.n.Load() > after+1<<20 })
	select {
	case <-ended:
		t.Fatal("the session ended while the daemon was writing")
	default:
	}
	syscall.Kill(daemon, syscall.SIGKILL)
	<-ended
	if final.ExitCode != 5 {
		t.Errorf("exit code %d once the daemon stopped, want the exec's 5", final.ExitCode)
	}
}
