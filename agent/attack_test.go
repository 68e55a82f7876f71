package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
		if agentHandshake(context.Background(), tr, testSecret, modeForward, "") != nil {
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
	if err := agentHandshake(context.Background(), tr, testSecret, modeReverse, "c1"); err != nil {
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
